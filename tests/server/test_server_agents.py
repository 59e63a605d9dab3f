"""Several agents over HTTP (in-process app): listing, addressing, hand-offs, session info, metrics,
and the CLI's ``--agent``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import make_app, parse_sse

from agenthost.cli import main
from agenthost.settings import Settings
from support.agents import TEAM

HEADERS = {"X-User-Id": "alice"}


@pytest.fixture
async def team() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.load({"store": "memory://", "agents": TEAM, "default_agent": "triage"})
    app = make_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await app.state.host.close()


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error"}
    return response.status_code, body["error"]["code"], body["error"]["message"]


async def chat(client: httpx.AsyncClient, path: str, **body: Any) -> httpx.Response:
    return await client.post(path, json=body, headers=HEADERS)


async def test_agents_are_listed(team: httpx.AsyncClient) -> None:
    response = await team.get("/v1/agents", headers=HEADERS)
    assert response.status_code == 200
    agents = {a["name"]: a for a in response.json()["agents"]}
    assert list(agents) == ["triage", "support", "billing"]
    assert agents["triage"] == {
        "name": "triage",
        "description": "Finds out what the user needs.",
        "model": "offline",
        "fallback_models": [],
        "tools": [],
        "handoffs": ["support", "billing"],
        "default": True,
    }
    assert agents["billing"]["tools"] == ["transfer"] and not agents["billing"]["default"]
    models = (await team.get("/v1/models", headers=HEADERS)).json()
    assert [m["id"] for m in models["data"]] == ["triage", "support", "billing"]


async def test_each_agent_has_a_chat_route_and_sessions_show_their_agent(
    team: httpx.AsyncClient,
) -> None:
    reply = await chat(team, "/v1/agents/support/chat", message="My name is Al", session_id="s1")
    assert reply.status_code == 200
    assert reply.json()["agent"] == "support" and reply.json()["model"] == "offline"
    default = await chat(team, "/v1/chat", message="hi", session_id="s2")
    assert default.json()["agent"] == "triage"
    follow = await chat(team, "/v1/chat", message="What is my name?", session_id="s1")
    assert (follow.json()["agent"], follow.json()["reply"]) == ("support", "Your name is Al.")
    session = (await team.get("/v1/sessions/s1", headers=HEADERS)).json()
    assert session["agent"] == "support" and session["entry_agent"] == "support"
    assert session["config"] == {}  # the agent record is shown apart from the client's config
    listed = (await team.get("/v1/sessions", headers=HEADERS)).json()["sessions"]
    assert {s["session_id"]: s["agent"] for s in listed} == {"s1": "support", "s2": "triage"}
    messages = (await team.get("/v1/sessions/s1/messages", headers=HEADERS)).json()["messages"]
    assert [m["meta"]["agent"] for m in messages] == ["support"] * 4


async def test_a_streamed_hand_off_says_who_speaks(team: httpx.AsyncClient) -> None:
    await chat(team, "/v1/chat", message="My name is Bea", session_id="h")
    response = await team.post(
        "/v1/chat",
        json={"message": "/handoff billing", "session_id": "h", "stream": True},
        headers=HEADERS,
    )
    events = parse_sse(response.text)
    assert [kind for kind, _ in events] == ["tool_call", "tool_result", "handoff", "delta", "done"]
    assert events[2][1]["from"] == "triage" and events[2][1]["to"] == "billing"
    assert events[3][1]["agent"] == "billing"
    assert events[4][1]["agent"] == "billing"
    again = await chat(team, "/v1/agents/triage/chat", message="What is my name?", session_id="h")
    assert (again.json()["agent"], again.json()["reply"]) == ("billing", "Your name is Bea.")
    session = (await team.get("/v1/sessions/h", headers=HEADERS)).json()
    assert (session["agent"], session["entry_agent"]) == ("billing", "triage")


async def test_addressing_errors_are_clear(team: httpx.AsyncClient) -> None:
    await chat(team, "/v1/agents/billing/chat", message="hi", session_id="b")
    code, kind, message = error(
        await chat(team, "/v1/agents/support/chat", message="x", session_id="b")
    )
    assert (code, kind) == (409, "conflict") and "with agent 'billing'" in message
    code, kind, message = error(await chat(team, "/v1/agents/nobody/chat", message="x"))
    assert (code, kind) == (404, "not_found")
    assert "agents: triage, support, billing" in message
    patched = await team.patch("/v1/sessions/b", json={"config": {"agent": "x"}}, headers=HEADERS)
    assert error(patched)[:2] == (422, "invalid_input")
    moved = await team.patch("/v1/sessions/b", json={"agent": "support"}, headers=HEADERS)
    assert moved.status_code == 200 and moved.json()["agent"] == "support"
    created = await team.post(
        "/v1/sessions", json={"session_id": "new", "agent": "billing"}, headers=HEADERS
    )
    assert created.status_code == 201 and created.json()["agent"] == "billing"
    unknown = await team.post("/v1/sessions", json={"agent": "nobody"}, headers=HEADERS)
    assert error(unknown)[:2] == (404, "not_found")


async def test_metrics_stats_and_live_sessions_carry_the_agent(team: httpx.AsyncClient) -> None:
    await chat(team, "/v1/chat", message="/handoff support", session_id="m")
    await chat(team, "/v1/agents/billing/chat", message="hi", session_id="m2")
    text = (await team.get("/metrics")).text
    assert 'agenthost_handoffs_total{source="triage",target="support"} 1.0' in text
    assert 'agenthost_turn_duration_seconds_count{agent="support",status="completed"} 1.0' in text
    assert 'agenthost_turn_duration_seconds_count{agent="billing",status="completed"} 1.0' in text
    assert 'agenthost_model_call_duration_seconds_count{agent="triage",model="offline"}' in text
    stats = (await team.get("/v1/admin/stats", headers=HEADERS)).json()
    assert stats["agents"]["support"]["live_sessions"] == 1
    assert stats["agents"]["billing"]["live_sessions"] == 1
    live = (await team.get("/v1/admin/sessions", headers=HEADERS)).json()["sessions"]
    assert {s["session_id"]: s["agent"] for s in live} == {"m": "support", "m2": "billing"}


def test_cli_chat_and_sessions_take_an_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--store", f"sqlite:///{tmp_path / 'cli.db'}", "--agents", TEAM]
    user = ["--user", "cy"]
    assert main(["chat", *user, *where, "--agent", "billing", "--session", "s1", "hello"]) == 0
    assert main(["chat", *user, *where, "--session", "s2", "/handoff support"]) == 0
    out = capsys.readouterr().out
    assert "You said: hello" in out
    assert "[handed off from triage to support]" in out
    assert main(["sessions", "list", *user, *where, "--agent", "support", "--json"]) == 0
    listed = __import__("json").loads(capsys.readouterr().out)
    assert [(s["session_id"], s["agent"]) for s in listed] == [("s2", "support")]
    assert main(["sessions", "list", *user, *where]) == 0
    table = capsys.readouterr().out
    assert "AGENT" in table and "billing" in table and "support" in table
    assert main(["sessions", "show", "s2", *user, *where]) == 0
    shown = capsys.readouterr().out
    assert "agent 'support'" in shown and "[support] You are now talking to support." in shown
    assert main(["chat", *user, *where, "--agent", "nobody", "hi"]) == 1
    assert "agent 'nobody' is not served here" in capsys.readouterr().err
