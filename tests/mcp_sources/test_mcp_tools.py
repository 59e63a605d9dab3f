"""MCP tools as the model sees them: names, allow-list, approvals, events, listings."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
import pytest

from agenthost import (
    Agent,
    ApprovalRequired,
    ConfigError,
    FunctionModel,
    Host,
    MemoryStore,
    ModelReply,
    ModelRequest,
    ToolContext,
    ToolError,
    tool,
    tool_call,
)
from agenthost.events import Done, ToolCallEvent, ToolResultEvent
from agenthost.handoffs import transfer_name
from agenthost.mcp import MCPCaller, MCPSource
from agenthost.mcp.convert import MAX_RESULT_CHARS, result_text, tool_name
from support.clock import FakeClock
from support.mcp_servers import HttpMCPServer, calls, stdio_command, wait_until

ALICE = ToolContext("default", "alice", "s1", "run_x")


@tool
def echo(text: str) -> str:
    """A local echo, to clash with the server's."""
    return f"local {text}"


def host_for(agent: Agent) -> Host:
    return Host(agent, store=MemoryStore(max_messages=None), cleanup_interval=None)


async def offered(agent: Agent) -> dict[str, bool]:
    """The tools a turn of alice's sees: name -> requires_approval."""
    return {t.name: t.requires_approval for t in (await agent.toolset(ALICE)).values()}


async def test_tools_are_prefixed_allow_listed_and_never_shadow_own_tools(
    stdio_log: Path,
) -> None:
    command = stdio_command(stdio_log)
    listed = MCPSource("rec", command=command, tools=["echo", "fail"])
    bare = MCPSource("raw", command=command, prefix="", tools=["echo", "slow"])
    agent = Agent(name="t", tools=[echo], mcp=[listed, bare])
    async with host_for(agent) as host:
        assert sorted(await offered(agent)) == ["echo", "rec_echo", "rec_fail", "slow"]
        result = await host.run('/tool echo {"text": "hi"}', user_id="alice")
        assert result.reply == "echo returned: local hi"  # the agent's own tool wins
        result = await host.run('/tool rec_echo {"text": "hi"}', user_id="alice")
        assert result.reply == "rec_echo returned: echo hi as nobody"
        assert [c["text"] for c in calls(stdio_log)] == ["hi"]


async def test_mcp_tools_emit_the_same_events_as_tools(stdio_log: Path) -> None:
    agent = Agent(name="t", tools=[echo], mcp=[MCPSource("rec", command=stdio_command(stdio_log))])

    async def events(text: str) -> list[str]:
        out = []
        async for event in host.stream(text, user_id="alice", session_id=text[:10]):
            out.append(event.to_dict()["type"])
            if isinstance(event, ToolResultEvent):
                assert not event.is_error and event.content.endswith(
                    "hi" if "local" in event.content else "nobody"
                )
        return out

    async with host_for(agent) as host:
        local = await events('/tool echo {"text": "hi"}')
        remote = await events('/tool rec_echo {"text": "hi"}')
    assert local == remote == ["tool_call", "tool_result", "delta", "done"]


async def test_requires_approval_pauses_until_a_human_approves(stdio_log: Path) -> None:
    source = MCPSource("rec", command=stdio_command(stdio_log), requires_approval=["echo"])
    agent = Agent(name="t", mcp=[source])
    async with host_for(agent) as host:
        flags = await offered(agent)
        assert flags["rec_echo"] is True and flags["rec_fail"] is False
        paused = await host.run('/tool rec_echo {"text": "pay 10"}', user_id="alice")
        assert paused.status == "awaiting_approval"
        (call,) = paused.approvals
        assert call.name == "rec_echo"
        assert calls(stdio_log) == []  # nothing reached the server yet

        events = [e async for e in host.approve_stream(call.id, True, user_id="alice")]
        assert [type(e) for e in events[:2]] == [ToolCallEvent, ToolResultEvent]
        done = events[-1]
        assert (
            isinstance(done, Done)
            and done.result.reply == "rec_echo returned: echo pay 10 as nobody"
        )
        assert [c["text"] for c in calls(stdio_log)] == ["pay 10"]

        paused = await host.run('/tool rec_echo {"text": "pay 99"}', user_id="alice")
        denied = await host.approve(paused.approvals[0].id, False, user_id="alice")
        assert "denied" in denied.reply
        assert len(calls(stdio_log)) == 1
        assert not any(isinstance(e, ApprovalRequired) for e in events)


async def test_list_changed_notifications_are_honoured(http_server: HttpMCPServer) -> None:
    source = MCPSource("rec", url=http_server.url)
    agent = Agent(name="t", mcp=[source])
    async with host_for(agent) as host:
        assert "rec_extra" not in await offered(agent)
        await host.run('/tool rec_grow {"notify": true}', user_id="alice")
        await wait_until(lambda: source.stats()["list_changed"] >= 1)
        assert "rec_extra" in await offered(agent)
        result = await host.run("/tool rec_extra {}", user_id="alice")
        assert result.reply == "rec_extra returned: extra tool"


async def test_listings_are_cached_for_their_ttl(http_server: HttpMCPServer) -> None:
    clock = FakeClock()
    source = MCPSource("rec", url=http_server.url, list_ttl=60, clock=clock)
    agent = Agent(name="t", mcp=[source])
    async with host_for(agent) as host:
        await host.run('/tool rec_grow {"notify": false}', user_id="alice")
        assert "rec_extra" not in await offered(agent)  # cached, and no notification came
        clock.advance(61)
        assert "rec_extra" in await offered(agent)


async def test_legacy_protocol_connections_work_and_see_changes(stdio_log: Path) -> None:
    source = MCPSource("rec", command=stdio_command(stdio_log), protocol="legacy")
    agent = Agent(name="t", mcp=[source])
    async with host_for(agent) as host:
        result = await host.run('/tool rec_echo {"text": "old"}', user_id="alice")
        assert result.reply == "rec_echo returned: echo old as nobody"
        await host.run('/tool rec_grow {"notify": true}', user_id="alice")
        await wait_until(lambda: source.stats()["list_changed"] >= 1)
        assert "rec_extra" in await offered(agent)


async def test_a_failing_credential_provider_gives_no_tools_only(stdio_log: Path) -> None:
    def broken(caller: MCPCaller) -> dict[str, str]:
        raise RuntimeError("vault is down")

    def wrong(caller: MCPCaller) -> object:
        return ["not", "a", "mapping"]

    for provider in (broken, wrong):
        source = MCPSource("rec", command=stdio_command(stdio_log), headers=provider)  # type: ignore[arg-type]
        agent = Agent(name="t", tools=[echo], mcp=[source])
        async with host_for(agent) as host:
            assert list(await offered(agent)) == ["echo"]
            result = await host.run('/tool echo {"text": "x"}', user_id="alice")
            assert result.reply == "echo returned: local x"
            assert source.stats()["listing_failures"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of url"),
        ({"url": "http://x/mcp", "command": ["x"]}, "exactly one of url"),
        ({"url": "ftp://x"}, "http://"),
        ({"command": "python server.py"}, "list of strings"),
        ({"command": []}, "list of strings"),
        ({"url": "http://x/mcp", "timeout": 0}, "timeout must be more than 0"),
        ({"url": "http://x/mcp", "max_connections": 0}, "max_connections must be at least 1"),
        ({"url": "http://x/mcp", "protocol": "2025-11-25"}, "protocol must be"),
        ({"url": "http://x/mcp", "headers": "myapp.auth:headers"}, "credential provider"),
        ({"url": "http://x/mcp", "tools": "echo"}, "list of tool names"),
    ],
)
def test_bad_configuration_is_a_clear_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MCPSource("rec", **options)  # type: ignore[arg-type]


def test_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        MCPSource("has space", url="http://x/mcp")
    one = MCPSource("rec", url="http://x/mcp")
    with pytest.raises(ConfigError, match="duplicate MCP server names"):
        Agent(name="t", mcp=[one, MCPSource("rec", url="http://y/mcp")])
    assert tool_name("rec_", "files.read/all") == "rec_files_read_all"
    assert tool_name("rec_", "x" * 61) is None


def test_results_become_text() -> None:
    def result(*content: types.ContentBlock, **fields: object) -> types.CallToolResult:
        return types.CallToolResult(content=list(content), **fields)  # type: ignore[arg-type]

    text = types.TextContent(type="text", text="hello")
    image = types.ImageContent(type="image", data="AAAA", mime_type="image/png")
    assert result_text("s", "t", result(text, image)) == "hello\n[image: image/png]"
    assert result_text("s", "t", result(structured_content={"n": 1})) == '{"n":1}'
    long = types.TextContent(type="text", text="x" * (MAX_RESULT_CHARS + 5))
    assert result_text("s", "t", result(long)).endswith(
        f"[cut: the result had {MAX_RESULT_CHARS + 5} characters]"
    )
    with pytest.raises(ToolError, match="no such file"):
        result_text(
            "s", "t", result(types.TextContent(type="text", text="no such file"), is_error=True)
        )
    with pytest.raises(ToolError, match="reported an error"):
        result_text("s", "t", result(is_error=True))


async def test_mcp_tools_follow_the_speaking_agent_after_a_handoff(stdio_log: Path) -> None:
    """Triage (no MCP) hands the session to sales, whose MCP tool it then calls: the tools
    the model sees are resolved for the agent speaking now."""
    offered_to: dict[str, list[str]] = {}

    def triage(request: ModelRequest) -> ModelReply | str:
        offered_to["triage"] = [t["function"]["name"] for t in request.tools]
        return ModelReply(tool_calls=[tool_call(transfer_name("sales"), {}, id="t1")])

    def sales(request: ModelRequest) -> ModelReply | str:
        offered_to["sales"] = [t["function"]["name"] for t in request.tools]
        last = request.messages[-1]
        if last.role == "tool" and last.name == "rec_echo":
            return f"sales says {last.content}"
        return ModelReply(tool_calls=[tool_call("rec_echo", {"text": "deal"}, id="s1")])

    source = MCPSource("rec", command=stdio_command(stdio_log), tools=["echo"])
    agents = [
        Agent(name="triage", model=FunctionModel(triage, "triage-fn"), handoffs=("sales",)),
        Agent(name="sales", model=FunctionModel(sales, "sales-fn"), mcp=(source,)),
    ]
    async with Host(agents, store=MemoryStore(max_messages=None), cleanup_interval=None) as host:
        result = await host.run("I want to buy", user_id="alice")
        assert result.reply == "sales says echo deal as nobody"
        assert "mcp" in await host.stats()
    assert offered_to == {"triage": [transfer_name("sales")], "sales": ["rec_echo"]}
    assert [c["text"] for c in calls(stdio_log)] == ["deal"]
