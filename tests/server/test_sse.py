"""``agenthost.server.sse``: frames, errors in a started stream, and a client that leaves
mid-stream (the turn is interrupted, the session stays well-formed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from serverkit import make_app, read_first_event

from agenthost import Host, MemoryStore, SessionKey
from agenthost.errors import ModelError, SessionBusy
from agenthost.events import Delta
from agenthost.server.sse import event_stream, frame
from support.agents import agent
from support.serve import bearer, uid

INTERRUPTED = {"status": "interrupted", "error": "the caller went away"}


async def roles(host: Host, user: str) -> list[str]:
    return [m.role for m in await host.history(user_id=user)]


def chat_scope(path: str = "/v1/chat") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }


class LeavingClient:
    """ASGI receive/send of a client that sends its request, reads one chunk and leaves."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()
        self.requested = False
        self.first_chunk = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.first_chunk.set()


async def test_disconnect_mid_stream_interrupts_the_turn() -> None:
    host = Host(agent, store=MemoryStore(max_messages=None))
    app = make_app(host=host)
    client = LeavingClient({"message": "slow please", "user_id": "u", "stream": True})

    # The slow model waits a minute after its first delta: only the disconnect ends this.
    await asyncio.wait_for(app(chat_scope(), client.receive, client.send), timeout=20)

    assert client.sent[0]["status"] == 200
    assert client.sent[1]["body"].startswith(b"event: delta\n")
    history = await host.history(user_id="u")
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[-1].content == "thinking..."
    assert history[-1].meta == INTERRUPTED
    runs = await host.store.runs(SessionKey.of(user_id="u"))
    assert [r.status for r in runs] == ["interrupted"]

    result = await host.run("My name is Ann", user_id="u")
    assert result.reply == "Nice to meet you, Ann!"
    assert await roles(host, "u") == ["user", "assistant"] * 2
    await host.close()


async def test_closing_a_stream_early_stores_the_interruption_before_unlocking() -> None:
    """What the server relies on: aclose() finishes the turn's bookkeeping synchronously."""
    host = Host(agent, store=MemoryStore(max_messages=None))
    events = host.stream("hello", user_id="u")
    first = await anext(events)
    assert first.type == "delta"
    await events.aclose()  # type: ignore[attr-defined]

    assert host.lock_count == 0
    history = await host.history(user_id="u")
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[-1].meta == INTERRUPTED
    await host.close()


def test_disconnect_over_a_real_connection(keyed: httpx.Client) -> None:
    headers = bearer("bob")
    session = uid("s")
    slow = {"message": "slow please", "session_id": session, "stream": True}
    with keyed.stream("POST", "/v1/chat", json=slow, headers=headers) as stream:
        lines = stream.iter_lines()
        assert read_first_event(lines) == ("delta", {"type": "delta", "text": "thinking..."})
    # Queue policy: this turn waits for the interrupted one to close, then runs.
    body = {"message": "My name is Bo", "session_id": session}
    after = keyed.post("/v1/chat", json=body, headers=headers)
    assert after.json()["reply"] == "Nice to meet you, Bo!"
    messages = keyed.get(f"/v1/sessions/{session}/messages", headers=headers).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[1]["meta"] == INTERRUPTED


# -- frames and errors, on the response alone ------------------------------------------


class StayingClient:
    """ASGI receive/send of a client that reads the whole response."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.done.wait()  # never leaves before the end
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.done.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def served(events: AsyncIterator[Any]) -> StayingClient:
    response = await event_stream(events)
    client = StayingClient()
    await response(chat_scope(), client.receive, client.send)
    return client


def test_a_frame_is_event_and_compact_json_with_text_as_is() -> None:
    assert frame("delta", {"type": "delta", "text": '你好 "x"'}) == (
        'event: delta\ndata: {"type":"delta","text":"你好 \\"x\\""}\n\n'.encode()
    )


async def test_events_stream_as_frames_with_no_caching() -> None:
    async def events() -> AsyncIterator[Delta]:
        yield Delta("Hello")
        yield Delta(" there", agent="support")

    client = await served(events())
    start = client.sent[0]
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"cache-control"] == b"no-cache" and headers[b"x-accel-buffering"] == b"no"
    assert client.body == frame("delta", {"type": "delta", "text": "Hello"}) + frame(
        "delta", {"type": "delta", "text": " there", "agent": "support"}
    )
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_an_error_after_the_start_is_an_error_frame_and_the_stream_ends() -> None:
    async def events() -> AsyncIterator[Delta]:
        yield Delta("partial")
        raise SessionBusy("busy now")

    client = await served(events())
    frames = client.body.decode().strip().split("\n\n")
    assert frames[0].startswith("event: delta")
    assert frames[1].startswith("event: error")
    error = json.loads(frames[1].split("data: ", 1)[1])
    assert (error["code"], error["message"]) == (SessionBusy.code, "busy now")
    assert "request_id" not in error  # outside a request there is none to name


async def test_an_unexpected_failure_is_a_generic_error_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def events() -> AsyncIterator[Delta]:
        yield Delta("partial")
        raise KeyError("secret detail")

    client = await served(events())
    error = json.loads(client.body.decode().strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert (error["code"], error["message"]) == (ModelError.code, "the stream failed")
    assert "secret detail" not in client.body.decode()  # logged, not shown to the client
    assert any(r.message == "event stream failed: KeyError" for r in caplog.records)


async def test_an_error_before_the_first_event_raises_before_any_response() -> None:
    closed: list[bool] = []

    async def events() -> AsyncIterator[Delta]:
        try:
            raise SessionBusy("busy at once")
            yield Delta("never")
        finally:
            closed.append(True)

    with pytest.raises(SessionBusy):
        await event_stream(events())  # the error handlers give it its own status
    assert closed == [True]
