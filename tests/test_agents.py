"""Several agents on one Host: which agent answers a session, and hand-offs between them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost import (
    Agent,
    ConfigError,
    Conflict,
    FunctionModel,
    Host,
    InvalidInput,
    ModelReply,
    ModelRequest,
    NotFound,
    SQLiteStore,
    tool_call,
)
from agenthost.agents import AgentSet, load_agents
from agenthost.events import Delta, Done, Handoff, ToolResultEvent
from agenthost.handoffs import MAX_HANDOFFS
from support.agents import lookup, team
from support.clock import FakeClock


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with Host(team(), store=SQLiteStore(tmp_path / "a.db")) as h:
        yield h


# -- the set of agents ------------------------------------------------------------------


def test_agent_sets_are_checked_once() -> None:
    a, b = Agent(name="a"), Agent(name="b")
    with pytest.raises(ConfigError, match="two agents are named 'a'"):
        AgentSet([a, Agent(name="a")])
    with pytest.raises(ConfigError, match="hands off to 'c', which is not served"):
        AgentSet([Agent(name="a", handoffs=("c",)), b])
    with pytest.raises(ConfigError, match="cannot hand off to itself"):
        Agent(name="a", handoffs=("a",))
    with pytest.raises(ConfigError, match="agent name 'a b'"):
        AgentSet([Agent(name="a b"), b])
    with pytest.raises(ConfigError, match="default agent 'z'"):
        AgentSet([a, b], default="z")
    with pytest.raises(ConfigError, match="handoffs and fallback_models are sequences"):
        Agent(name="a", handoffs="b")  # type: ignore[arg-type]

    def transfer_to_b() -> str:
        """A tool that shadows the transfer tool."""
        return ""

    with pytest.raises(ConfigError, match="has a tool named 'transfer_to_b'"):
        AgentSet([Agent(name="a", tools=(transfer_to_b,), handoffs=("b",)), b])
    assert AgentSet({"x": a, "y": b}).names == ["x", "y"]  # a dict names its agents
    assert AgentSet([Agent(name="one agent")]).default.name == "one agent"  # alone: any name


def test_schemas_list_the_tools_then_one_transfer_tool_per_target() -> None:
    agents = AgentSet(team())
    names = [s["function"]["name"] for s in agents.schemas(agents.named("triage"))]
    assert names == ["transfer_to_support", "transfer_to_billing"]
    support = agents.schemas(agents.named("support"))
    assert [s["function"]["name"] for s in support] == ["lookup", "transfer_to_triage"]
    assert "Finds out what the user needs." in support[1]["function"]["description"]


def test_agents_load_from_a_list_a_dict_or_a_factory() -> None:
    assert [a.name for a in load_agents("support.agents:team")] == ["triage", "support", "billing"]
    assert [a.name for a in load_agents("support.agents:agent")] == ["test-agent"]
    with pytest.raises(ConfigError, match="not Agents"):
        load_agents("support.agents:AGENT")
    with pytest.raises(ConfigError, match="cannot import agents"):
        load_agents("support.agents:missing")


# -- which agent answers ----------------------------------------------------------------


async def test_a_new_session_starts_with_the_named_agent_else_the_default(host: Host) -> None:
    first = await host.run("hello", user_id="u")
    named = await host.run("hello", user_id="u", session_id="s2", agent="billing")
    assert (first.agent, named.agent) == ("triage", "billing")
    record = await host.get_session(user_id="u", session_id="s2")
    assert record is not None
    assert record.config == {"agent": {"active": "billing", "entry": "billing"}}
    again = await host.run("and again", user_id="u", session_id="s2")  # no agent named
    assert again.agent == "billing"
    with pytest.raises(NotFound, match="agent 'nobody' is not served here"):
        host.stream("hi", user_id="u", agent="nobody")


async def test_a_hand_off_moves_the_session_and_keeps_its_history(host: Host) -> None:
    await host.run("My name is Alice", user_id="alice")
    events = [e async for e in host.stream("/handoff billing", user_id="alice")]
    kinds = [e.type for e in events]
    assert kinds == ["tool_call", "tool_result", "handoff", "delta", "done"]
    result = events[-1]
    assert isinstance(result, Done) and result.result.agent == "billing"
    handoff = events[2]
    assert isinstance(handoff, Handoff) and (handoff.source, handoff.target) == (
        "triage",
        "billing",
    )
    delta = events[3]
    assert isinstance(delta, Delta) and delta.agent == "billing"
    assert delta.text == "You are now talking to billing. How can I help?"

    later = await host.run("What is my name?", user_id="alice")
    assert (later.agent, later.reply) == ("billing", "Your name is Alice.")
    history = await host.history(user_id="alice")
    speakers = [(m.role, (m.meta or {}).get("agent")) for m in history]
    assert speakers == [
        ("user", "triage"),
        ("assistant", "triage"),
        ("user", "triage"),
        ("assistant", "triage"),  # the transfer call
        ("tool", "triage"),  # its result: the transfer, recorded
        ("assistant", "billing"),
        ("user", "billing"),
        ("assistant", "billing"),
    ]
    assert history[4].content == "Transferred from triage to billing."
    assert (history[4].meta or {})["handoff"] == {"from": "triage", "to": "billing"}
    stats = await host.stats()
    assert stats["agents"]["billing"]["live_sessions"] == 1
    assert stats["agents"]["triage"]["live_sessions"] == 0


async def test_addressing_a_session_through_another_agent(host: Host) -> None:
    await host.run("/handoff billing", user_id="u")  # started with triage, now with billing
    via_entry = await host.run("hi", user_id="u", agent="triage")
    via_active = await host.run("hi", user_id="u", agent="billing")
    assert via_entry.agent == via_active.agent == "billing"
    with pytest.raises(
        Conflict, match=r"with agent 'billing' .*started with 'triage'.*not 'support'"
    ):
        await host.run("hi", user_id="u", agent="support")
    record = await host.update_session(user_id="u", agent="support")  # moved explicitly
    assert record.config["agent"] == {"active": "support", "entry": "triage"}
    assert (await host.run("hi", user_id="u", agent="support")).agent == "support"


async def test_clients_cannot_write_the_agent_record_through_config(host: Host) -> None:
    with pytest.raises(InvalidInput, match=r"config\.agent is kept by the server"):
        await host.update_session(user_id="u", config={"agent": None}, create=True)
    with pytest.raises(InvalidInput, match=r"config\.agent"):
        host.stream("hi", user_id="u", config={"agent": {"active": "billing"}})


async def test_a_single_agent_host_records_no_agent() -> None:
    async with Host(Agent(name="solo")) as host:
        result = await host.run("hi", user_id="u")
        record = await host.get_session(user_id="u")
    assert result.agent == "solo" and record is not None and record.config == {}


# -- hand-offs ----------------------------------------------------------------------------


def ping_pong(target: str) -> FunctionModel:
    """A model that hands off whenever its transfer tool is offered, and never answers."""

    def reply(request: ModelRequest) -> ModelReply | str:
        names = {t["function"]["name"] for t in request.tools}
        if f"transfer_to_{target}" in names:
            return ModelReply(tool_calls=[tool_call(f"transfer_to_{target}", id=f"c{target}")])
        return "stuck"

    return FunctionModel(reply, f"to-{target}")


async def test_hand_offs_in_a_turn_are_bounded() -> None:
    agents = [
        Agent(name="ping", model=ping_pong("pong"), handoffs=("pong",), max_steps=3),
        Agent(name="pong", model=ping_pong("ping"), handoffs=("ping",), max_steps=3),
    ]
    async with Host(agents) as host:
        events = [e async for e in host.stream("go", user_id="u")]
        history = await host.history(user_id="u")
    handoffs = [e for e in events if isinstance(e, Handoff)]
    assert len(handoffs) == MAX_HANDOFFS
    refused = [e for e in events if isinstance(e, ToolResultEvent) and e.is_error]
    assert refused and "transferred 4 times in this turn" in refused[0].content
    done = events[-1]
    assert isinstance(done, Done) and "stopped after 3 steps" in done.result.reply
    assert (history[-1].meta or {})["status"] == "step_limit"


async def test_a_transfer_next_to_a_call_awaiting_approval_waits(tmp_path: Path) -> None:
    def both(request: ModelRequest) -> ModelReply | str:
        if request.messages[-1].role == "user":
            calls = [
                tool_call("transfer", {"amount": 1, "to": "x"}, id="t1"),
                tool_call("transfer_to_triage", id="h1"),
            ]
            return ModelReply(tool_calls=calls)
        return "after"

    billing = team()[2]
    agents = [
        Agent(name="triage"),
        Agent(
            name="billing",
            model=FunctionModel(both),
            tools=billing.tools,
            handoffs=("triage",),
        ),
    ]
    async with Host(agents) as host:
        await host.create_session(user_id="u", agent="billing")
        result = await host.run("pay", user_id="u")
        assert result.status == "awaiting_approval" and result.agent == "billing"
        history = await host.history(user_id="u")
        assert "waits for approval" in history[-1].content
        resumed = await host.approve("t1", True, user_id="u")
    assert resumed.agent == "billing" and resumed.reply == "after"


async def test_approvals_resume_with_the_agent_the_session_was_handed_to(host: Host) -> None:
    await host.run("/handoff billing", user_id="u")
    paused = await host.run('/tool transfer {"amount": 5, "to": "bob"}', user_id="u")
    assert paused.status == "awaiting_approval" and paused.agent == "billing"
    resumed = await host.approve(paused.approvals[0].id, True, user_id="u")
    assert resumed.agent == "billing" and resumed.reply == "transfer returned: sent 5 to bob"


async def test_a_stateless_turn_hands_off_for_that_turn_only(host: Host) -> None:
    from agenthost.messages import Message

    result = await host.run_stateless(
        [Message("user", "/handoff support")], user_id="u", agent="triage"
    )
    assert result.agent == "support"
    assert await host.sessions(user_id="u") == []


async def test_a_hand_off_made_by_one_process_is_seen_by_another(tmp_path: Path) -> None:
    clock = FakeClock()
    a = Host(team(), store=SQLiteStore(tmp_path / "shared.db"), clock=clock)
    b = Host(team(), store=SQLiteStore(tmp_path / "shared.db"), clock=clock)
    async with a, b:
        await a.run("My name is Ann", user_id="ann")
        await b.run("hello", user_id="ann")  # b now caches the session, with triage
        await a.run("/handoff billing", user_id="ann")
        # b's copy says triage: the turn is refused at the store, reloaded, and billing answers
        moved = await b.run("What is my name?", user_id="ann", agent="billing")
        assert (moved.agent, moved.reply) == ("billing", "Your name is Ann.")
        plain = await a.run("What is my name?", user_id="ann")
        assert plain.agent == "billing"


async def test_a_hand_off_on_a_stale_copy_does_not_lose_the_other_write(tmp_path: Path) -> None:
    a = Host(team(), store=SQLiteStore(tmp_path / "shared.db"))
    b = Host(team(), store=SQLiteStore(tmp_path / "shared.db"))
    async with a, b:
        await a.run("hello", user_id="u")
        await b.run("hello", user_id="u")  # both cache it
        await a.update_session(user_id="u", config={"temperature": 0.5})
        await b.run("/handoff support", user_id="u")  # on b's stale copy: reloaded first
        record = await a.get_session(user_id="u")
    assert record is not None
    assert record.config == {
        "agent": {"active": "support", "entry": "triage"},
        "temperature": 0.5,
    }


async def test_each_agent_sees_its_own_history_window() -> None:
    seen: dict[str, int] = {}

    def counting(name: str) -> FunctionModel:
        def reply(request: ModelRequest) -> str:
            seen[name] = len(request.messages)
            return "ok"

        return FunctionModel(reply, name)

    agents = [
        Agent(name="wide", model=counting("wide"), history_window=10),
        Agent(name="narrow", model=counting("narrow"), history_window=3, tools=(lookup,)),
    ]
    async with Host(agents) as host:
        for i in range(4):
            await host.run(f"m{i}", user_id="u", session_id="w", agent="wide")
            await host.run(f"m{i}", user_id="u", session_id="n", agent="narrow")
    assert seen == {"wide": 7, "narrow": 3}
