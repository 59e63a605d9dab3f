"""Tool approval over HTTP: pause, survive a server restart, approve or deny, stay private.

The restart is of a real ``agenthost serve`` process; the denial is served in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverkit import parse_sse

from support.agents import AGENT
from support.inprocess import InProcessServer, sqlite_in_process
from support.serve import Server, bearer, sqlite_server

TRANSFER = "/tool transfer " + json.dumps({"amount": 5, "to": "bob"})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with sqlite_server(tmp_path, AGENT, keyed=True) as server:
        yield server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[InProcessServer]:
    with sqlite_in_process(tmp_path, AGENT, keyed=True) as server:
        yield server


def client(server: Server | InProcessServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30.0, headers=bearer("alice"))


def test_approval_survives_a_restart_and_runs_the_tool(server: Server) -> None:
    with client(server) as alice:
        paused = alice.post("/v1/chat", json={"message": TRANSFER, "session_id": "pay"}).json()
        assert paused["status"] == "awaiting_approval"
        [call] = paused["approvals"]
        assert call["name"] == "transfer"
        assert json.loads(call["arguments"]) == {"amount": 5, "to": "bob"}
        blocked = alice.post("/v1/chat", json={"message": "hello", "session_id": "pay"})
        assert blocked.status_code == 409
        assert "approval" in blocked.json()["error"]["message"]

    server.restart()

    with client(server) as alice:
        pending = alice.get("/v1/sessions/pay").json()["pending_approvals"]
        assert [p["id"] for p in pending] == [call["id"]]
        path = f"/v1/sessions/pay/approvals/{call['id']}"
        for who, status in (("bob", 404), ("eve", 404)):
            answer = alice.post(path, json={"approve": True}, headers=bearer(who))
            assert answer.status_code == status
        assert (
            alice.post(path, json={"approve": True}, headers={"Authorization": ""}).status_code
            == 401
        )

        done = alice.post(path, json={"approve": True})
        assert done.status_code == 200
        assert done.json()["status"] == "completed"
        assert done.json()["reply"] == "transfer returned: sent 5 to bob for alice"
        session = alice.get("/v1/sessions/pay").json()
        assert session["pending_approvals"] == []
        assert session["state"] == {"transferred": 5}
        assert alice.post(path, json={"approve": True}).status_code == 404  # answered already
        roles = [m["role"] for m in alice.get("/v1/sessions/pay/messages").json()["messages"]]
        assert roles == ["user", "assistant", "tool", "assistant"]


def test_denial_is_told_to_the_model_over_sse(served: InProcessServer) -> None:
    with client(served) as alice:
        stream = alice.post(
            "/v1/chat", json={"message": TRANSFER, "session_id": "deny", "stream": True}
        )
        events = parse_sse(stream.text)
        assert [kind for kind, _ in events] == ["approval_required", "done"]
        call_id = events[0][1]["id"]
        assert events[0][1]["name"] == "transfer"

        denied = alice.post(
            f"/v1/sessions/deny/approvals/{call_id}",
            json={"approve": False},
            headers={"Accept": "text/event-stream"},
        )
        events = parse_sse(denied.text)
        assert [kind for kind, _ in events] == ["tool_result", "delta", "done"]
        assert events[0][1]["is_error"] is True
        assert events[0][1]["content"].startswith("denied")
        assert events[2][1]["reply"].startswith("transfer returned: denied")
        assert alice.get("/v1/sessions/deny").json()["state"] == {}
