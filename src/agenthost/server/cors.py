"""CORS for browser apps on other origins: Starlette's middleware, configured once here.

Off unless ``cors_origins`` lists origins. Origins are an exact list (or ``*``
alone, never with credentials: settings refuse it). The methods are the API's,
the request headers are those the API reads, and the exposed headers are those
it sets, so a page's script can read the request id, ``Retry-After`` and the
``X-Agenthost-*`` headers. A preflight that asks for something not allowed gets
a JSON 400 without ``Access-Control-Allow-Origin``, so the browser refuses the
call. Streamed replies (SSE) get the same headers as any other response.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthost.protocols.openai_chat import (
    HISTORY_HEADER,
    RUN_HEADER,
    SESSION_HEADER,
    STATELESS_HEADER,
)
from agenthost.server.errors import error_body
from agenthost.server.requestid import HEADER as REQUEST_ID_HEADER
from agenthost.settings import Settings

ALLOW_METHODS = ("GET", "POST", "PATCH", "DELETE")
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "Idempotency-Key",
    "Last-Event-ID",
    "A2A-Version",
    REQUEST_ID_HEADER,
    "X-User-Id",
    "X-Tenant-Id",
    SESSION_HEADER,
    STATELESS_HEADER,
)
EXPOSE_HEADERS = (
    REQUEST_ID_HEADER,
    "Retry-After",
    "WWW-Authenticate",
    SESSION_HEADER,
    HISTORY_HEADER,
    RUN_HEADER,
)
_VARY_ORIGIN = (b"vary", b"Origin")


class Cors(CORSMiddleware):
    """Starlette's CORS middleware with a JSON body on a refused preflight, and a short way
    for requests without ``Origin`` (servers, curl, same-origin GETs): nothing to allow, so
    their responses only say ``Vary: Origin`` (for caches), without Starlette's header work.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), _VARY_ORIGIN]
            await send(message)

        await self.app(scope, receive, send_with_vary)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        message = f"CORS preflight refused (not allowed: {refused})"
        headers = {"Vary": response.headers["vary"]}
        return JSONResponse(error_body("cors_refused", message), status_code=400, headers=headers)


def cors_middleware(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind CORS as ``settings`` say, or ``app`` itself when CORS is off."""
    if not settings.cors_origins:
        return app
    return Cors(
        app,
        allow_origins=settings.cors_origins,
        allow_methods=ALLOW_METHODS,
        allow_headers=ALLOW_HEADERS,
        allow_credentials=settings.cors_allow_credentials,
        expose_headers=EXPOSE_HEADERS,
        max_age=settings.cors_max_age,
    )
