"""A loopback HTTP server that speaks the Chat Completions protocol, for adapter tests.

It streams SSE chunks exactly as the protocol does (role chunk, content deltas,
tool-call deltas split across chunks, a usage chunk, ``data: [DONE]``) and
records every request body it receives, and the key each came with.

``key`` is the only API key it accepts; ``label`` starts every reply (to tell two
servers apart); ``failures`` lists how to answer the next requests instead:
an HTTP status (429 with ``Retry-After: 0``) or ``"timeout"`` (no answer until the
client gives up).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support.serve import free_port


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _script(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Decide the reply: tools when offered and asked for, else echo the last message."""
    messages = body["messages"]
    last = messages[-1]
    tools = {t["function"]["name"] for t in body.get("tools", [])}
    if last["role"] == "tool":
        return f"tool said {last['content']}", []
    if "weather" in str(last.get("content")) and "get_weather" in tools:
        calls = [{"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
        if "both" in last["content"]:
            calls.append({"id": "call_b", "name": "get_weather", "arguments": '{"city": "Rome"}'})
        return "", calls
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    return f"echo: {last['content']} [system: {system}]", []


def _stream(text: str, calls: list[dict[str, Any]], usage: bool) -> Iterator[bytes]:
    def sse(data: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(data) + b"\n\n"

    yield sse(_chunk({"role": "assistant", "content": ""}))
    for word in text.split(" ") if text else []:
        yield sse(_chunk({"content": word + " "}))
    for index, call in enumerate(calls):
        args = call["arguments"]
        half = len(args) // 2
        yield sse(
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in (args[:half], args[half:]):
            yield sse(_chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    yield sse(_chunk({}, "tool_calls" if calls else "stop"))
    if usage:
        yield sse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "fake-model",
                "choices": [],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )
    yield b"data: [DONE]\n\n"


HANG_SECONDS = 30.0


class FakeOpenAI:
    def __init__(self, *, key: str = "test-key", label: str | None = None) -> None:
        self.key = key
        self.label = label
        self.requests: list[dict[str, Any]] = []
        self.keys_seen: list[str | None] = []
        self.fail_next = 0
        self.failures: list[int | str] = []
        self.closing = False
        self.release: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])]
        )

    async def completions(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.keys_seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, status_code=401)
        if self.fail_next:
            self.fail_next -= 1
            return JSONResponse({"error": {"message": "upstream down", "type": "server"}}, 500)
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "timeout":
                self.loop = asyncio.get_running_loop()
                await self.hang()
            status = 504 if failure == "timeout" else int(failure)
            headers = {"Retry-After": "0"} if status == 429 else {}
            error = {"error": {"message": f"fake failure {status}", "type": "server"}}
            return JSONResponse(error, status, headers=headers)
        text, calls = _script(body)
        if self.label:
            text = f"{self.label} {text}" if text else text
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))

            async def chunks() -> AsyncIterator[bytes]:
                for piece in _stream(text.strip(), calls, usage):
                    yield piece

            return StreamingResponse(chunks(), media_type="text/event-stream")
        return self.reply(body, text, calls)

    async def hang(self) -> None:
        """Answer nothing for a long while (the client times out first), or until closing."""
        self.release = self.release or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), HANG_SECONDS)

    def close(self) -> None:
        """End every request still hanging (call from any thread)."""
        self.closing = True
        release, loop = self.release, self.loop
        if release is not None and loop is not None:
            loop.call_soon_threadsafe(release.set)

    @staticmethod
    def reply(body: dict[str, Any], text: str, calls: list[dict[str, Any]]) -> Response:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
        return JSONResponse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app on a loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class SilentServer:
    """A loopback TCP server that accepts every connection, reads what is sent and never
    answers: a provider that hangs. ``accepted`` counts the connections (one per attempt)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.accepted = 0
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self._connections.append(connection)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._socket.close()
        for connection in self._connections:
            connection.close()
        self._thread.join(timeout=10)

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
