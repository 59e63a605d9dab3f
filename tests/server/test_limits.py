"""``agenthost.server.limits``: a body over the limit is 413 before the app sees it, whether
its length is declared or it arrives in chunks; a body within it reaches the app whole."""

from __future__ import annotations

import json
from typing import Any

from agenthost.server.limits import BodyLimitMiddleware, read_body

LIMIT = 10


class Echo:
    """An app that answers with the body it read."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})


async def call(app: Any, chunks: list[bytes], *, declared: int | None = None) -> tuple[int, bytes]:
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if not sent:
        return 0, b""
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    echo = Echo()
    app = BodyLimitMiddleware(echo, max_bytes=LIMIT)
    assert await call(app, [b"12345", b"67890"]) == (200, b"1234567890")
    assert await call(app, [b"abc"], declared=3) == (200, b"abc")
    assert echo.calls == 2


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    echo = Echo()
    status, body = await call(BodyLimitMiddleware(echo, max_bytes=LIMIT), [], declared=LIMIT + 1)
    assert status == 413 and echo.calls == 0
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large" and str(LIMIT) in error["message"]


async def test_chunks_adding_up_past_the_limit_are_refused() -> None:
    echo = Echo()
    status, _ = await call(BodyLimitMiddleware(echo, max_bytes=LIMIT), [b"123456", b"789012"])
    assert status == 413 and echo.calls == 0


async def test_a_client_that_leaves_while_sending_gets_nothing() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": []}
    assert await read_body(scope, receive, send, LIMIT) is None
    assert sent == []
