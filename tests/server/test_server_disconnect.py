"""A client that leaves mid-stream: the turn is interrupted, the session stays well-formed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from serverkit import make_app, read_first_event

from agenthost import Host, MemoryStore, SessionKey
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
