"""/docs (Swagger UI) and /redoc render in real headless chromium with no internet.

The machine has no route to a CDN: the pages render only because their assets are
served by the server itself (``agenthost.server.routes.docs``).
"""

from __future__ import annotations

import pytest

from support.browser import Console


@pytest.mark.parametrize(
    ("path", "title"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
)
def test_the_api_docs_render_offline(console: Console, path: str, title: str) -> None:
    console.open(path)
    console.wait(
        lambda: any("agenthost" in e.text for e in console.finds(title)), f"{path} renders"
    )
    console.wait(lambda: "/v1/chat" in console.text("body"), f"{path} lists the routes")
