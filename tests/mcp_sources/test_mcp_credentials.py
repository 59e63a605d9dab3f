"""Per-user credentials: every call reaches the MCP server with its own user's token.

The servers are real (``support/mcp_server.py``, the mcp package's ``MCPServer``)
and keep their own log of the credential each call arrived with; the assertions
read that log, not agenthost's view of itself.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agenthost import Agent, Host, MemoryStore
from agenthost.mcp import MCPCaller, MCPSource
from support.clock import FakeClock
from support.mcp_servers import HttpMCPServer, calls, established, stdio_command

TOKENS = {"alice": "token-of-alice", "bob": "token-of-bob"}
TURNS_PER_USER = 100
MAX_CONCURRENCY = 4


def host_for(source: MCPSource) -> Host:
    return Host(
        Agent(name="mcp-test", mcp=[source]),
        store=MemoryStore(max_messages=None),
        cleanup_interval=None,
    )


async def run_both_users(host: Host) -> None:
    """100 concurrent turns per user (each in its own session), all at once."""

    async def turn(user: str, i: int) -> None:
        text = f"{user} {i}"
        result = await host.run(
            f'/tool rec_echo {{"text": "{text}", "delay": 0.002}}',
            user_id=user,
            session_id=f"s{i}",
        )
        assert result.status == "completed"
        assert result.reply.startswith(f"rec_echo returned: echo {text} as ")
        assert result.reply.endswith(TOKENS[user])

    await asyncio.gather(*(turn(u, i) for i in range(TURNS_PER_USER) for u in TOKENS))


def assert_own_tokens(log: list[dict[str, Any]], token: Callable[[str], str]) -> None:
    echoes = [c for c in log if c["tool"] == "echo"]
    assert len(echoes) == TURNS_PER_USER * len(TOKENS)
    for call in echoes:
        user = call["text"].split()[0]
        assert call["token"] == token(user), call
    # bounded concurrency: never more calls of one credential in flight than allowed
    assert max(c["in_flight"] for c in echoes) <= MAX_CONCURRENCY


async def test_http_calls_carry_their_own_users_token(http_server: HttpMCPServer) -> None:
    clock = FakeClock()
    source = MCPSource(
        "rec",
        url=http_server.url,
        headers=lambda caller: {"Authorization": f"Bearer {TOKENS[caller.user_id]}"},
        max_concurrency=MAX_CONCURRENCY,
        idle_timeout=60,
        clock=clock,
    )
    async with host_for(source) as host:
        await run_both_users(host)
        log = http_server.calls()
        assert_own_tokens(log, lambda user: f"Bearer {TOKENS[user]}")

        # pooled: one connection per credential, made once, reused by all 200 turns
        stats = source.stats()
        assert (stats["connects"], stats["connections"], stats["calls"]) == (2, 2, 200)
        # ... and on the wire no TCP connection ever carried two users' tokens
        ports: dict[str, set[int]] = defaultdict(set)
        for call in log:
            ports[call["token"]].add(call["peer"])
        alice, bob = (ports[f"Bearer {TOKENS[u]}"] for u in ("alice", "bob"))
        assert alice and bob and not alice & bob
        assert max(len(alice), len(bob)) <= MAX_CONCURRENCY + 1  # + the event stream
        assert established(http_server.port) >= 2

        # idle: closed after idle_timeout without calls; nothing left open
        clock.advance(59)
        assert await source.close_idle() == 0
        clock.advance(2)
        assert await source.close_idle() == 2
        assert source.stats()["connections"] == 0
        assert source.stats()["closed_idle"] == 2
        assert established(http_server.port) == 0

        # reused across turns, and re-opened on demand after the idle close
        again = await host.run('/tool rec_echo {"text": "alice again"}', user_id="alice")
        assert again.reply.endswith(TOKENS["alice"])
        assert source.stats()["connects"] == 3
    assert established(http_server.port) == 0  # Host.close closed the rest


async def test_stdio_runs_one_process_per_credential(stdio_log: Path) -> None:
    clock = FakeClock()
    source = MCPSource(
        "rec",
        command=stdio_command(stdio_log),
        headers=lambda caller: {"MCP_TOKEN": TOKENS[caller.user_id]},
        max_concurrency=MAX_CONCURRENCY,
        idle_timeout=60,
        clock=clock,
    )
    async with host_for(source) as host:
        await run_both_users(host)
        log = calls(stdio_log)
        assert_own_tokens(log, lambda user: TOKENS[user])
        pids: dict[str, set[int]] = defaultdict(set)
        for call in log:
            pids[call["token"]].add(call["pid"])
        assert {t: len(p) for t, p in pids.items()} == {t: 1 for t in TOKENS.values()}
        (alice_pid,), (bob_pid,) = pids[TOKENS["alice"]], pids[TOKENS["bob"]]
        assert alice_pid != bob_pid
        assert source.stats()["connects"] == 2

        clock.advance(61)
        assert await source.close_idle() == 2
        for pid in (alice_pid, bob_pid):  # the processes are gone (and reaped)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


async def test_a_shared_credential_shares_a_connection(http_server: HttpMCPServer) -> None:
    """Pooled per credential, not per user: the same token is the same connection."""
    teams = {"alice": "team-red", "bob": "team-red", "carol": "team-blue"}

    async def provider(caller: MCPCaller) -> dict[str, str]:  # async providers work too
        return {"Authorization": f"Bearer {teams[caller.user_id]}", "X-Tenant": caller.tenant_id}

    source = MCPSource("rec", url=http_server.url, headers=provider)
    async with host_for(source) as host:
        for user in teams:
            text = f"{user} hello"
            await host.run(f'/tool rec_echo {{"text": "{text}"}}', user_id=user)
        assert source.stats()["connects"] == 2
        seen = {c["text"].split()[0]: c["token"] for c in http_server.calls()}
        assert seen == {user: f"Bearer {team}" for user, team in teams.items()}


async def test_connections_are_bounded(http_server: HttpMCPServer) -> None:
    """With max_connections=2, a third credential evicts the least recently used idle one."""
    source = MCPSource(
        "rec",
        url=http_server.url,
        headers=lambda caller: {"Authorization": f"Bearer {caller.user_id}"},
        max_connections=2,
    )
    async with host_for(source) as host:
        for user in ("u1", "u2", "u3", "u1"):
            result = await host.run('/tool rec_echo {"text": "x"}', user_id=user)
            assert result.reply.endswith(f"Bearer {user}")
            assert source.stats()["connections"] <= 2
        stats = source.stats()
        assert (stats["connects"], stats["evicted"]) == (4, 2)
        assert [c["token"] for c in http_server.calls()] == [
            "Bearer u1",
            "Bearer u2",
            "Bearer u3",
            "Bearer u1",
        ]
