"""Request body limit as pure ASGI middleware: 413 before the app sees an oversized body.

The declared ``Content-Length`` is checked first; the body actually received is
counted too (chunked uploads declare nothing), buffered up to the limit and
replayed to the app. Bodies here are small JSON documents, so buffering is cheap.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthost.server.errors import error_body


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, send, self.max_bytes)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def read_body(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> bytes | None:
    """The whole request body; or None once a body over ``max_bytes`` got its 413 (or the
    client left while sending it)."""
    declared = _content_length(scope)
    if declared is not None and declared > max_bytes:
        await _reject(send, max_bytes)
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left while sending
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            await _reject(send, max_bytes)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _reject(send: Send, max_bytes: int) -> None:
    message = f"request body is larger than {max_bytes} bytes"
    payload = json.dumps(error_body("payload_too_large", message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
