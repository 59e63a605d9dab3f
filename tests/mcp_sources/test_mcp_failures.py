"""Failure isolation: a dead, slow or garbled MCP server fails its own tool calls, nothing else.

Each turn here calls an MCP tool and a local ``@tool`` in the same step (a
scripted model): the turn must complete, the MCP call must come back to the
model as an error result, and the local tool must still answer.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from agenthost import (
    Agent,
    Done,
    FunctionModel,
    Host,
    MemoryStore,
    ModelReply,
    ModelRequest,
    ToolResultEvent,
    tool,
    tool_call,
)
from agenthost.mcp import MCPSource
from support.clock import FakeClock
from support.mcp_servers import HttpMCPServer, calls, stdio_command, wait_until
from support.serve import free_port


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Script:
    """A model calling ``mcp_tool`` (with ``arguments``) and ``add`` in one step, then answering."""

    def __init__(self, mcp_tool: str, arguments: dict[str, object]) -> None:
        self.mcp_tool = mcp_tool
        self.arguments = arguments
        self.offered: list[list[str]] = []

    def __call__(self, request: ModelRequest) -> ModelReply | str:
        last = request.messages[-1]
        if last.role == "user":
            names = [t["function"]["name"] for t in request.tools]
            self.offered.append(names)
            wanted = [tool_call("add", {"a": 2, "b": 3}, id=f"add-{last.seq}")]
            if self.mcp_tool in names:
                wanted.insert(0, tool_call(self.mcp_tool, self.arguments, id=f"mcp-{last.seq}"))
            return ModelReply(tool_calls=wanted)
        return "answered"


async def turn(host: Host, text: str = "go", user: str = "alice") -> dict[str, ToolResultEvent]:
    """Run one turn; return its tool results by tool name (asserting it completed)."""
    results: dict[str, ToolResultEvent] = {}
    done: Done | None = None
    async for event in host.stream(text, user_id=user):
        if isinstance(event, ToolResultEvent):
            results[event.name] = event
        elif isinstance(event, Done):
            done = event
    assert done is not None and done.result.status == "completed", done
    assert done.result.reply == "answered"
    assert results["add"].content == "5" and not results["add"].is_error
    return results


def host_for(script: Script, source: MCPSource) -> Host:
    agent = Agent(name="t", model=FunctionModel(script), tools=[add], mcp=[source])
    return Host(agent, store=MemoryStore(max_messages=None), cleanup_interval=None)


async def test_a_server_that_died_gives_an_error_result(http_server: HttpMCPServer) -> None:
    script = Script("rec_echo", {"text": "hi"})
    source = MCPSource("rec", url=http_server.url)
    async with host_for(script, source) as host:
        first = await turn(host)
        assert first["rec_echo"].content == "echo hi as nobody"

        http_server.kill()
        second = await turn(host)  # the listing is cached: the model still calls the tool
        assert second["rec_echo"].is_error
        assert "MCP server 'rec'" in second["rec_echo"].content
        third = await turn(host)
        assert third["rec_echo"].is_error

        # what the model read is in the history as the tool's (error) result
        history = await host.history(user_id="alice")
        errors = [m for m in history if m.name == "rec_echo" and (m.meta or {}).get("error")]
        assert [m.content.startswith("error: ToolError: ") for m in errors] == [True, True]
        stats = source.stats()
        assert stats["state"] == "down"
        assert stats["last_error"]
        assert stats["call_errors"] == 2


async def test_an_unreachable_server_is_retried_after_a_pause() -> None:
    clock = FakeClock()
    script = Script("gone_echo", {"text": "hi"})
    source = MCPSource("gone", url=f"http://127.0.0.1:{free_port()}/mcp", clock=clock)
    async with host_for(script, source) as host:
        await turn(host)  # no tools from it, the turn goes on
        assert script.offered[-1] == ["add"]
        stats = source.stats()
        assert (stats["state"], stats["connect_failures"]) == ("down", 1)
        assert "ConnectError" in stats["last_error"]
        assert stats["retry_in_seconds"] == 1.0

        await turn(host)  # within the pause: no new attempt, no waiting for one
        assert source.stats()["connect_failures"] == 1

        clock.advance(1.5)
        await turn(host)  # after it: one more attempt, and a longer pause
        stats = source.stats()
        assert stats["connect_failures"] == 2
        assert stats["retry_in_seconds"] == 2.0


async def test_a_server_that_comes_back_is_used_again(tmp_path: Path) -> None:
    clock = FakeClock()
    server = HttpMCPServer(tmp_path).start()
    try:
        script = Script("rec_echo", {"text": "hi"})
        source = MCPSource("rec", url=server.url, clock=clock)
        async with host_for(script, source) as host:
            assert not (await turn(host))["rec_echo"].is_error
            server.kill()
            assert (await turn(host))["rec_echo"].is_error
            server = HttpMCPServer(tmp_path, port=server.port).start()
            clock.advance(60)  # past any pause
            results = await turn(host)
            assert results["rec_echo"].content == "echo hi as nobody"
            assert source.stats()["state"] == "up"
            assert source.stats()["connects"] == 2
    finally:
        server.kill()


async def test_a_slow_tool_times_out_and_the_connection_stays(stdio_log: Path) -> None:
    script = Script("rec_slow", {"seconds": 5})
    source = MCPSource("rec", command=stdio_command(stdio_log), timeout=0.5)
    async with host_for(script, source) as host:
        began = time.perf_counter()
        results = await turn(host)
        assert time.perf_counter() - began < 4.5  # the timeout, not the tool, ended the call
        assert results["rec_slow"].is_error
        assert "timed out after 0.5s" in results["rec_slow"].content

        script.mcp_tool, script.arguments = "rec_echo", {"text": "still here"}
        results = await turn(host)
        assert results["rec_echo"].content == "echo still here as nobody"
        stats = source.stats()
        assert (stats["timeouts"], stats["connects"], stats["state"]) == (1, 1, "up")


async def test_a_tool_error_is_the_servers_message(stdio_log: Path) -> None:
    script = Script("rec_fail", {"reason": "disk full"})
    source = MCPSource("rec", command=stdio_command(stdio_log))
    async with host_for(script, source) as host:
        results = await turn(host)
        assert results["rec_fail"].is_error
        assert "disk full" in results["rec_fail"].content
        assert source.stats()["tool_errors"] == 1
        assert source.stats()["state"] == "up"


async def test_garbage_on_stdout_is_survived(stdio_log: Path) -> None:
    script = Script("rec_garble", {})
    source = MCPSource("rec", command=stdio_command(stdio_log))
    async with host_for(script, source) as host:
        assert (await turn(host))["rec_garble"].content == "garbled"
        script.mcp_tool, script.arguments = "rec_echo", {"text": "after"}
        assert (await turn(host))["rec_echo"].content == "echo after as nobody"


async def test_a_garbage_http_server_offers_no_tools(http_server: HttpMCPServer) -> None:
    script = Script("junk_echo", {"text": "hi"})
    source = MCPSource("junk", url=http_server.url.replace("/mcp", "/garbage"))
    async with host_for(script, source) as host:
        await turn(host)
        assert script.offered[-1] == ["add"]
        stats = source.stats()
        assert (stats["state"], stats["connect_failures"]) == ("down", 1)
        assert "parse" in stats["last_error"]


async def test_a_stdio_server_that_dies_is_restarted(stdio_log: Path) -> None:
    script = Script("rec_echo", {"text": "one"})
    source = MCPSource("rec", command=stdio_command(stdio_log))
    async with host_for(script, source) as host:
        await turn(host)
        (first_pid,) = {c["pid"] for c in calls(stdio_log)}
        os.kill(first_pid, signal.SIGKILL)
        await wait_until(lambda: source.stats()["connections"] == 0)  # it noticed
        assert source.stats()["lost"] == 1

        script.arguments = {"text": "two"}
        results = await turn(host)
        assert results["rec_echo"].content == "echo two as nobody"
        pids = [c["pid"] for c in calls(stdio_log)]
        assert pids[0] == first_pid and pids[-1] != first_pid
        assert source.stats()["connects"] == 2
