"""Several Hosts on one PostgreSQL or Redis store, as several server processes would be.

Each Host has its own store connections, coordinator and live-session cache; the
only thing they share is the database. (The real multi-process runs, with
``agenthost serve``, are in ``test_serve_processes.py``.)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agenthost import Agent, Host
from agenthost.coordination import build_coordinator
from agenthost.coordination.base import LeaseCoordinator
from agenthost.errors import SessionBusy
from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores import RunRecord, WriteBatch, open_store
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
    with_query,
)

MakeHost = Callable[..., Host]


@pytest.fixture(params=["postgres", "redis"])
async def make_host(request: pytest.FixtureRequest) -> AsyncIterator[MakeHost]:
    """``make_host(**host_options)``: a Host on this test's shared store."""
    kind: str = request.param
    base = postgres_url() if kind == "postgres" else redis_url()
    namespace = unique("hosts")
    option = "schema" if kind == "postgres" else "prefix"
    url = with_query(base, **{option: namespace})
    hosts: list[Host] = []

    def make(*, lock_ttl: float = 15.0, **options: Any) -> Host:
        coordinator = build_coordinator(f"{url}&lock_ttl={lock_ttl}")
        assert coordinator is not None and coordinator.shared
        host = Host(
            Agent(name="shared"),
            store=open_store(url),
            coordinator=coordinator,
            cleanup_interval=None,
            **options,
        )
        hosts.append(host)
        return host

    try:
        yield make
    finally:
        for host in hosts:
            await host.close()
        if kind == "postgres":
            await drop_postgres_schema(base, namespace)
        else:
            await drop_redis_prefix(base, namespace)
            await drop_redis_prefix(base, f"{namespace}-lock")


async def test_a_host_never_answers_from_a_stale_window(make_host: MakeHost) -> None:
    a, b = make_host(), make_host()
    await a.run("Hello there", user_id="alice")  # a caches the session
    await b.run("My name is Alice", user_id="alice")  # b appends behind a's back
    reply = await a.run("What is my name?", user_id="alice")
    assert "Alice" in reply.text  # a reloaded: it saw b's messages
    history = await b.history(user_id="alice")
    assert [m.seq for m in history] == list(range(1, 7))
    assert [m.role for m in history] == ["user", "assistant"] * 3


async def test_turns_spread_over_hosts_keep_every_session_contiguous(make_host: MakeHost) -> None:
    hosts = [make_host(), make_host(), make_host()]
    rng = random.Random(7)

    async def converse(user: str) -> None:
        for turn in range(8):
            host = rng.choice(hosts)
            await host.run(f"{user} turn {turn}", user_id=user, session_id="chat")

    users = [f"user{i}" for i in range(12)]
    await asyncio.gather(*(converse(u) for u in users))
    for user in users:
        history = await hosts[0].history(user_id=user, session_id="chat")
        assert [m.seq for m in history] == list(range(1, 17))
        assert [m.role for m in history] == ["user", "assistant"] * 8
        assert [m.content for m in history[::2]] == [f"{user} turn {t}" for t in range(8)]


async def test_concurrent_turns_on_one_session_from_several_hosts_are_serialised(
    make_host: MakeHost,
) -> None:
    hosts = [make_host(), make_host()]
    await asyncio.gather(
        *(hosts[i % 2].run(f"message {i}", user_id="alice", session_id="busy") for i in range(10))
    )
    history = await hosts[0].history(user_id="alice", session_id="busy")
    assert [m.seq for m in history] == list(range(1, 21))
    assert [m.role for m in history] == ["user", "assistant"] * 10
    for question, answer in zip(history[::2], history[1::2], strict=True):
        assert answer.run_id == question.run_id  # no turn interleaved with another


async def test_reject_policy_holds_across_hosts(make_host: MakeHost) -> None:
    a = make_host()
    b = make_host(policy="reject")
    await a.start()
    coordinator = a.coordinator
    assert isinstance(coordinator, LeaseCoordinator)
    key = SessionKey("default", "alice", "default")
    # a turn of `a` in progress: its lease (a PostgreSQL coordinator folded into the
    # store takes it with the turn's first write, not when the hold begins)
    assert await coordinator.try_acquire(key, "token-of-a-turn-of-a")
    with pytest.raises(SessionBusy):
        await b.run("hello", user_id="alice")
    await coordinator.release(key, "token-of-a-turn-of-a")
    result = await b.run("hello", user_id="alice")
    assert result.text


async def test_a_dead_holders_run_is_marked_interrupted_by_the_next_host(
    make_host: MakeHost,
) -> None:
    """A process died mid-turn: its user message is stored, its run is 'running', its
    lock was never released. Another host takes over after the lock expires."""
    survivor = make_host(lock_ttl=1.0)
    coordinator = survivor.coordinator
    assert isinstance(coordinator, LeaseCoordinator)
    await survivor.start()
    key = SessionKey("default", "alice", "default")
    now = time.time()
    await survivor.store.write(
        WriteBatch(
            key,
            now,
            0,
            [Message("user", "question the dead process took", run_id="run_dead", seq=1)],
            RunRecord("run_dead", key, "running", now),
        )
    )
    assert await coordinator.try_acquire(key, "token-of-the-dead-process")

    result = await survivor.run("are you there?", user_id="alice")
    assert result.text
    run = await survivor.store.get_run("run_dead")
    assert run is not None
    assert run.status == "interrupted"
    history = await survivor.history(user_id="alice")
    assert [m.seq for m in history] == [1, 2, 3, 4]
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[1].meta == {"status": "interrupted", "error": run.error}
