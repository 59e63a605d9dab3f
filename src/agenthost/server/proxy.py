"""Behind a reverse proxy: a path prefix, and which proxies may speak for the client.

``root_path`` (``--root-path /agents``): the app is public under that prefix.
:class:`RootPathMiddleware` puts it in the ASGI scope, so every URL the app
builds (the agent card, ``/docs`` and its OpenAPI ``servers``) carries it; the web
page's URLs are relative to the page. The proxy may strip the prefix (``proxy_pass
http://127.0.0.1:8000/;``) or pass it on: either way the routes match.

``forwarded_allow_ips`` (``--forwarded-allow-ips 127.0.0.1``): the client
address and scheme come from ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only on
connections from these addresses (uvicorn's proxy-header support). Empty, the
default, trusts no one: a direct caller cannot claim to be someone else or to
have come over https. The public host name is the ``Host`` header, which the
proxy must pass on (``proxy_set_header Host $http_host;``).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from agenthost.settings import Settings


class RootPathMiddleware:
    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            # ASGI: ``path`` is the full path, ``root_path`` the part of it above the app.
            root = self.root_path
            path: str = scope["path"]
            if path != root and not path.startswith(root + "/"):
                scope["path"] = root + path
                raw = scope.get("raw_path")
                if raw is not None:
                    scope["raw_path"] = root.encode() + raw
            scope["root_path"] = root
        await self.app(scope, receive, send)


def root_path_middleware(app: ASGIApp, settings: Settings) -> ASGIApp:
    return RootPathMiddleware(app, settings.root_path) if settings.root_path else app


def uvicorn_proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's keyword arguments for trusting proxies: none unless some are listed
    (uvicorn alone would trust 127.0.0.1, or ``$FORWARDED_ALLOW_IPS``)."""
    if not settings.forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}
