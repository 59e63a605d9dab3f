"""Request ids: one per HTTP request, echoed as ``X-Request-Id`` and carried in a context var.

A caller (or the proxy in front) may send ``X-Request-Id``; an id of 1-128
characters among letters, digits and ``._~:@/+=-`` is kept, anything else is
replaced by a generated one (32 hex digits): a tracing header never fails a
request, and the response always says which id was used. While the request is
served, :func:`current_request_id` returns it, so error bodies
(:mod:`agenthost.server.errors`), SSE error events and every log line
(:class:`RequestIdFilter`) carry it without being handed it; tasks a turn
starts copy the context, so they carry it too.

:class:`RequestIdMiddleware` is pure ASGI and sits outside Starlette's error
middleware (see :func:`agenthost.server.app.create_app`), so even a 500 carries
the header.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-Id"
MAX_LENGTH = 128

_HEADER = HEADER.lower().encode()
_VALID = re.compile(rb"[A-Za-z0-9._~:@/+=-]{1,%d}" % MAX_LENGTH)

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agenthost_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the HTTP request being served here, or None outside one."""
    return _request_id.get()


def new_request_id() -> str:
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """Sets the request's id for its duration and adds ``X-Request-Id`` to its response
    (the app never sets that header itself). Lean: it wraps every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                if _VALID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        header = (_HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` (None outside a request) on every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True
