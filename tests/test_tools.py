"""@tool schemas, the model -> tools -> model loop, and tenant-aware tool context."""

from __future__ import annotations

from typing import Literal

import pytest

from agenthost import (
    Agent,
    ConfigError,
    FunctionModel,
    Host,
    ModelReply,
    ModelRequest,
    Tool,
    ToolContext,
    tool,
    tool_call,
)
from agenthost.events import Done, ToolCallEvent, ToolResultEvent
from agenthost.tools import raw_tool


@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather for a city.

    Args:
        city: The city name.
        unit: Temperature unit.
    """
    return f"{city}: 21{unit}"


@tool
async def remember(fact: str, ctx: ToolContext) -> dict[str, object]:
    """Store a fact in the session state."""
    facts = list(ctx.state.get("facts", []))
    facts.append(f"{ctx.user_id}:{fact}")
    ctx.state["facts"] = facts
    return {"stored": fact, "tenant": ctx.tenant_id}


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)


def test_schema_from_signature_and_docstring() -> None:
    schema = get_weather.schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "get_weather"
    assert fn["description"] == "Current weather for a city."
    params = fn["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "The city name."}
    assert params["properties"]["unit"]["enum"] == ["c", "f"]
    assert params["properties"]["unit"]["default"] == "c"


def test_context_parameter_is_hidden_from_the_model() -> None:
    params = remember.schema()["function"]["parameters"]
    assert list(params["properties"]) == ["fact"]
    assert remember.context_param == "ctx"


def test_decorator_options_and_duplicate_names() -> None:
    @tool(name="search_docs", requires_approval=True, description="Search.")
    def search(q: str) -> str:
        return q

    assert search.name == "search_docs" and search.requires_approval
    with pytest.raises(ConfigError, match="duplicate"):
        Agent(tools=(search, search))


def test_plain_functions_become_tools_on_the_agent() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    agent = Agent(tools=(add,))  # type: ignore[arg-type]
    assert agent.tools[0].name == "add"
    assert agent.tool("add") is agent.tools[0]


def scripted(*steps: ModelReply) -> FunctionModel:
    """A model that returns the given replies in order, one per call."""
    remaining = list(steps)

    def reply(request: ModelRequest) -> ModelReply:
        return remaining.pop(0)

    return FunctionModel(reply)


async def test_model_tool_model_loop_with_events_and_stored_messages() -> None:
    model = scripted(
        ModelReply(tool_calls=[tool_call("get_weather", {"city": "Paris"}, id="c1")]),
        ModelReply(text="It is 21c in Paris."),
    )
    async with Host(Agent(model=model, tools=(get_weather,))) as host:
        events = [e async for e in host.stream("weather?", user_id="u")]
        kinds = [e.type for e in events]
        assert kinds == ["tool_call", "tool_result", "delta", "done"]
        call = events[0]
        result = events[1]
        assert isinstance(call, ToolCallEvent) and call.call.name == "get_weather"
        assert isinstance(result, ToolResultEvent) and result.content == "Paris: 21c"
        assert isinstance(events[-1], Done) and events[-1].result.reply == "It is 21c in Paris."
        history = await host.history(user_id="u")
        assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
        assert history[1].tool_calls[0].id == "c1"
        assert history[2].tool_call_id == "c1" and history[2].content == "Paris: 21c"


async def test_tool_error_is_reported_to_the_model_not_raised() -> None:
    seen: list[str] = []

    def reply(request: ModelRequest) -> ModelReply:
        last = request.messages[-1]
        if last.role == "tool":
            seen.append(last.content)
            return ModelReply(text="sorry")
        return ModelReply(tool_calls=[tool_call("explode", {"reason": "boom"})])

    async with Host(Agent(model=FunctionModel(reply), tools=(explode,))) as host:
        result = await host.run("go")
    assert result.reply == "sorry"
    assert seen == ["error: RuntimeError: boom"]


async def test_bad_arguments_and_unknown_tool_are_reported() -> None:
    seen: list[str] = []

    def reply(request: ModelRequest) -> ModelReply:
        tools = [m.content for m in request.messages if m.role == "tool"]
        if tools:
            seen.extend(tools)
            return ModelReply(text="ok")
        return ModelReply(
            tool_calls=[
                tool_call("get_weather", {"unit": "c"}, id="a"),
                tool_call("nope", {}, id="b"),
            ]
        )

    async with Host(Agent(model=FunctionModel(reply), tools=(get_weather,))) as host:
        await host.run("go")
    assert seen[0].startswith("error: ValueError: invalid arguments")
    assert "city" in seen[0]
    assert seen[1] == "error: unknown tool 'nope'"


async def test_tool_context_is_tenant_aware_and_state_persists() -> None:
    def reply(request: ModelRequest) -> ModelReply:
        last = request.messages[-1]
        if last.role == "tool":
            return ModelReply(text=last.content)
        return ModelReply(tool_calls=[tool_call("remember", {"fact": last.content})])

    async with Host(Agent(model=FunctionModel(reply), tools=(remember,))) as host:
        out = await host.run("likes tea", user_id="alice", tenant_id="acme")
        await host.run("likes coffee", user_id="alice", tenant_id="acme")
        await host.run("likes juice", user_id="bob", tenant_id="acme")
        assert '"tenant":"acme"' in out.reply
        alice = await host.get_state(user_id="alice", tenant_id="acme")
        assert alice == {"facts": ["alice:likes tea", "alice:likes coffee"]}
        assert await host.get_state(user_id="bob", tenant_id="acme") == {
            "facts": ["bob:likes juice"]
        }


async def test_step_limit_ends_the_turn_with_a_well_formed_history() -> None:
    def always_tools(request: ModelRequest) -> ModelReply:
        return ModelReply(tool_calls=[tool_call("get_weather", {"city": "Oslo"})])

    agent = Agent(model=FunctionModel(always_tools), tools=(get_weather,), max_steps=3)
    async with Host(agent) as host:
        result = await host.run("loop forever")
        assert "3 steps" in result.reply
        roles = [m.role for m in await host.history()]
        assert roles == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]


async def test_offline_model_can_call_tools_by_command() -> None:
    async with Host(Agent(tools=(get_weather,))) as host:
        result = await host.run('/tool get_weather {"city": "Rome"}')
    assert result.reply == "get_weather returned: Rome: 21c"


class PerUserTools:
    """A tool source without MCP: each user gets a ``whoami`` tool of their own."""

    name = "per-user"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def tools_for(self, context: ToolContext) -> list[Tool]:
        self.asked.append(context.user_id)

        async def whoami(arguments: dict[str, object], ctx: ToolContext) -> str:
            return f"{context.user_id} (called by {ctx.user_id})"

        return [raw_tool("whoami", "Who is asking.", {"type": "object"}, whoami)]

    def stats(self) -> dict[str, object]:
        return {"asked": len(self.asked)}

    async def aclose(self) -> None:
        return None


class BrokenSource(PerUserTools):
    name = "broken"

    async def tools_for(self, context: ToolContext) -> list[Tool]:
        raise RuntimeError("down")


async def test_tool_sources_are_resolved_per_turn_with_the_callers_identity() -> None:
    source = PerUserTools()
    agent = Agent(tools=(get_weather,), mcp=(source, BrokenSource()))
    async with Host(agent) as host:
        alice = await host.run("/tool whoami {}", user_id="alice")
        bob = await host.run("/tool whoami {}", user_id="bob")
        weather = await host.run('/tool get_weather {"city": "Rome"}', user_id="bob")
        stats = await host.stats()
    assert alice.reply == "whoami returned: alice (called by alice)"
    assert bob.reply == "whoami returned: bob (called by bob)"
    assert weather.reply == "get_weather returned: Rome: 21c"  # a broken source costs nothing
    assert source.asked == ["alice", "bob", "bob"]  # once per turn
    assert stats["mcp"] == {"per-user": {"asked": 3}, "broken": {"asked": 0}}
    with pytest.raises(ConfigError, match="not a tool source"):
        Agent(mcp=(get_weather,))  # type: ignore[arg-type]
