"""Server-Sent Events for a turn, with deterministic cleanup when the client leaves.

:func:`event_stream` pulls the first event before any byte is sent, so errors
raised while the turn starts (bad input, busy session, unknown session) still
get their proper status code from the error handlers. After that, each event
goes out as ``event: <type>`` / ``data: <json>``; an error event carries the request's
``request_id`` (the ``X-Request-Id`` response header says it too).

If the client disconnects, the task driving the turn is cancelled once (a
plain asyncio cancellation, not anyio's repeated one), so the turn loop gets a
single ``CancelledError`` at whatever it is awaiting and can store its closing
messages; then the event iterator is closed. Either the turn completed and is
stored, or it is marked interrupted: the session is never left half-written.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agenthost.errors import AgentHostError, ModelError
from agenthost.events import Event
from agenthost.server.requestid import current_request_id

log = logging.getLogger("agenthost.server")

Encoder = Callable[[Any], bytes]


def payload(data: dict[str, Any]) -> bytes:
    """Compact JSON, UTF-8 as is (orjson; Python's json for what orjson refuses, such as
    integers over 64 bits a tool returned)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def frame(event_type: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (event_type.encode(), payload(data))


def encode_event(event: Event) -> bytes:
    data = event.to_dict()
    if event.type == "error":
        _add_request_id(data)
    return frame(event.type, data)


def encode_error(exc: AgentHostError) -> bytes:
    data: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
    _add_request_id(data)
    return frame("error", data)


def _add_request_id(data: dict[str, Any]) -> None:
    request_id = current_request_id()
    if request_id is not None:
        data["request_id"] = request_id


async def aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


class EventStreamResponse(Response):
    """Streams already-started events; see the module docstring for disconnects."""

    media_type = "text/event-stream"

    def __init__(
        self,
        first: Any,
        rest: AsyncIterator[Any],
        *,
        encode: Encoder = encode_event,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.first = first
        self.rest = rest
        self.encode = encode
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streamer = asyncio.ensure_future(self._stream(send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({streamer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, streamer):
                task.cancel()  # a no-op for the one that finished
            await asyncio.gather(watcher, streamer, return_exceptions=True)
            await aclose(self.rest)

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if self.first is not None:
            await _body(send, self.encode(self.first))
        try:
            async for item in self.rest:
                await _body(send, self.encode(item))
        except AgentHostError as exc:
            await _body(send, encode_error(exc))
        except Exception as exc:
            log.error("event stream failed: %s", type(exc).__name__, exc_info=exc)
            await _body(send, encode_error(ModelError("the stream failed")))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _body(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def event_stream(
    events: AsyncIterator[Any], *, encode: Encoder = encode_event
) -> EventStreamResponse:
    """Start ``events`` (errors raise here, before the response) and stream the rest."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await aclose(events)
        raise
    return EventStreamResponse(first, events, encode=encode)
