"""B8: what an MCP tool call adds, on a warm pooled connection, over a ``@tool`` function.

Three variants of one ``echo`` tool: a local ``@tool``, the same tool on an MCP
server over stdio, and over streamable HTTP on loopback (the server of
:mod:`agenthost_bench.mcp_echo_server`, a child process). For each: the
latency of one tool call through the tool the turn resolves (``call_us``; the
CPU it costs this process, ``call_cpu_us``, is steadier on a busy machine), and
of a whole turn that calls it (offline model: model -> tool -> model, on a
MemoryStore; ``turn_us``), sequentially after a warm-up, so the connection is
open and pooled. ``added_*`` subtract the ``@tool`` figures; ``connects``
checks that every call used the one pooled connection; ``connect_and_list_ms``
is what the first turn paid to connect and list the tools (what every call
would pay without a pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from agenthost.agent import Agent
from agenthost.host import Host
from agenthost.stores.memory import MemoryStore
from agenthost.tools import Tool, ToolContext, tool
from agenthost_bench.inprocess import Results, percentile

# Run as a script (nothing to install) with -P: its folder must not shadow the stdlib (http.py).
SERVER = [sys.executable, "-P", str(Path(__file__).with_name("mcp_echo_server.py"))]
CALLS = 1000
TURNS = 300
WARM_UP = 50
CONTEXT = ToolContext("default", "bench", "s", "run_bench")


def unavailable() -> str | None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        return 'the mcp package is not installed: pip install "agenthost[mcp]"'
    return None


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


async def _timed(n: int, step: Callable[[int], Awaitable[Any]]) -> tuple[list[float], float]:
    """Latencies of ``n`` steps after a warm-up, and this process's CPU seconds per step."""
    for i in range(WARM_UP):
        await step(i)
    times = []
    cpu = time.process_time()
    for i in range(n):
        began = time.perf_counter()
        await step(i)
        times.append(time.perf_counter() - began)
    return times, (time.process_time() - cpu) / n


async def measure(agent: Agent, name: str, *, calls: int, turns: int) -> dict[str, float]:
    async with Host(agent, store=MemoryStore(max_messages=None), cleanup_interval=None) as host:
        began = time.perf_counter()
        resolved: Tool = (await agent.toolset(CONTEXT))[name]  # connects and lists: cold
        cold = time.perf_counter() - began

        async def call(i: int) -> None:
            assert await resolved.call(f'{{"text": "hello {i}"}}', CONTEXT) == f"hello {i}"

        async def turn(i: int) -> None:
            result = await host.run(f'/tool {name} {{"text": "hi {i}"}}', user_id="bench")
            assert result.reply == f"{name} returned: hi {i}", result.reply

        call_times, call_cpu = await _timed(calls, call)
        turn_times, _ = await _timed(turns, turn)
        sources = agent.mcp
        connects = sources[0].stats()["connects"] if sources else 0
    return {
        "call_us": statistics.median(call_times) * 1e6,
        "call_p99_us": percentile(call_times, 99) * 1e6,
        "call_cpu_us": call_cpu * 1e6,  # agenthost's side only: the server is another process
        "turn_us": statistics.median(turn_times) * 1e6,
        "connect_and_list_ms": cold * 1000,
        "connects": connects,
    }


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [*SERVER, "http", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark MCP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        process.wait()


async def _b8(calls: int, turns: int, url: str) -> Results:
    from agenthost.mcp import MCPSource

    stdio = MCPSource("stdio", command=[*SERVER, "stdio"])
    http = MCPSource("http", url=url)
    out: Results = {
        "@tool": await measure(Agent(name="b8", tools=(echo,)), "echo", calls=calls, turns=turns),
        "mcp stdio": await measure(
            Agent(name="b8", mcp=(stdio,)), "stdio_echo", calls=calls, turns=turns
        ),
        "mcp http": await measure(
            Agent(name="b8", mcp=(http,)), "http_echo", calls=calls, turns=turns
        ),
    }
    base = out["@tool"]
    for variant in ("mcp stdio", "mcp http"):
        metrics = out[variant]
        metrics["added_call_us"] = metrics["call_us"] - base["call_us"]
        metrics["added_turn_us"] = metrics["turn_us"] - base["turn_us"]
    return out


def b8(calls: int = CALLS, turns: int = TURNS) -> Results:
    with http_server() as url:
        return asyncio.run(_b8(calls, turns, url))
