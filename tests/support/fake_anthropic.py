"""A loopback HTTP server that speaks Anthropic's Messages API, for adapter tests.

It streams Server-Sent Events exactly as the protocol does (``message_start``,
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` for
text and for ``tool_use`` with its input JSON split across ``input_json_delta``
events, ``message_delta`` with the stop reason and output tokens,
``message_stop``, and ``ping`` in between), checks the key (``x-api-key``, or
``Authorization: Bearer``, which SDK releases of 2026 send) and
``anthropic-version``, and records every request body and the key it came with.

``failures`` lists how to answer the next requests instead: an HTTP status
(529 is Anthropic's "overloaded"), or ``"stream-error"`` (an ``error`` event
after ``message_start``, as the API sends when it is overloaded mid-stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if b.get("type") == "text")


def script(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Tool results are echoed; "weather" calls get_weather when offered; else an echo."""
    last = body["messages"][-1]
    content = last["content"]
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    if results:
        return "tool said " + ", ".join(str(r["content"]) for r in results), []
    text = _text_of(content)
    tools = {t["name"] for t in body.get("tools", [])}
    if "weather" in text and "get_weather" in tools:
        return "Let me look.", [{"id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]
    return f"echo: {text} [system: {body.get('system', '')}]", []


def key_of(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    bearer = request.headers.get("authorization", "")
    return key or (bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None)


class FakeAnthropic:
    def __init__(self, *, key: str = "anthropic-test-key") -> None:
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.keys_seen: list[str | None] = []
        self.failures: list[int | str] = []
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.keys_seen.append(key_of(request))
        if key_of(request) != self.key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version header required")
        if not body.get("stream") or not body.get("max_tokens"):
            return self._error(400, "invalid_request_error", "this fake only streams")
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, int):
            kinds = {529: "overloaded_error", 429: "rate_limit_error", 400: "invalid_request_error"}
            kind = kinds.get(failure, "api_error")
            return self._error(failure, kind, f"fake failure {failure}")
        text, calls = script(body)

        async def events() -> AsyncIterator[bytes]:
            for event in self._events(body, text, calls, failure == "stream-error"):
                yield event

        return StreamingResponse(events(), media_type="text/event-stream")

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Response:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return JSONResponse(body, status_code=status)

    @staticmethod
    def _events(
        body: dict[str, Any], text: str, calls: list[dict[str, Any]], fail: bool
    ) -> list[bytes]:
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 11, "output_tokens": 1},
        }
        out = [_sse("message_start", {"type": "message_start", "message": message})]
        if fail:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            return [*out, _sse("error", {"type": "error", "error": error})]
        out.append(_sse("ping", {"type": "ping"}))
        index = 0
        if text:
            start = {"type": "text", "text": ""}
            out.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            for word in text.split(" "):
                delta = {"type": "text_delta", "text": word + " "}
                out.append(
                    _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        for call in calls:
            block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
            out.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            arguments = orjson.dumps(call["input"]).decode()
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                out.append(
                    _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        stop = "tool_use" if calls else "end_turn"
        delta_event = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 9},
        }
        out.append(_sse("message_delta", delta_event))
        out.append(_sse("message_stop", {"type": "message_stop"}))
        return out
