"""Cross-process coordinators against real Redis, PostgreSQL and the kernel's file locks.

Two coordinator objects on one namespace stand for two server processes (each
has its own connections); the file-lock test uses a real second process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agenthost.coordination import build_coordinator
from agenthost.coordination.base import LeaseCoordinator
from agenthost.coordination.files import FileLockCoordinator
from agenthost.coordination.postgres import PostgresCoordinator
from agenthost.coordination.redis import RedisCoordinator
from agenthost.errors import ConfigError, SessionBusy
from agenthost.keys import SessionKey
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
    with_query,
)

KEY = SessionKey("acme", "alice", "s1")
OTHER = SessionKey("acme", "bob", "s1")
DEADLINE = 20.0


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + DEADLINE
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_build_coordinator_picks_by_urls_and_workers(tmp_path: Path) -> None:
    assert isinstance(
        build_coordinator("sqlite:///x.db", "redis://127.0.0.1:6379/0", 1), RedisCoordinator
    )
    assert isinstance(build_coordinator("postgresql://h/db", None, 1), PostgresCoordinator)
    assert isinstance(build_coordinator("postgresql://h/db", "redis://h/0", 4), RedisCoordinator)
    assert isinstance(build_coordinator("redis://h/0?prefix=p", None, 1), RedisCoordinator)
    files = build_coordinator(f"sqlite:///{tmp_path}/a.db", None, 2)
    assert isinstance(files, FileLockCoordinator)
    assert files.path == f"{tmp_path}/a.db.locks"
    assert build_coordinator("sqlite:///a.db", None, 1) is None
    assert build_coordinator("sqlite:///:memory:", None, 2) is None
    assert build_coordinator("memory://", None, 1) is None
    with pytest.raises(ConfigError, match="coordination URL scheme"):
        build_coordinator("sqlite:///a.db", "zookeeper://h", 1)
    redis_lock = build_coordinator("redis://h/0?prefix=p&lock_ttl=2.5&lock_wait=7", None, 1)
    assert isinstance(redis_lock, RedisCoordinator)
    assert (redis_lock.prefix, redis_lock.ttl, redis_lock.wait_timeout) == ("p-lock", 2.5, 7)
    with pytest.raises(ConfigError, match="lock_ttl"):
        RedisCoordinator("redis://h/0?lock_ttl=soon")


Pair = Callable[..., tuple[LeaseCoordinator, LeaseCoordinator]]


@pytest.fixture(params=["redis", "postgres"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """``pair(ttl=..., wait_timeout=...)``: two coordinators (two "processes") on one namespace."""
    made: list[LeaseCoordinator] = []
    kind: str = request.param
    base = redis_url() if kind == "redis" else postgres_url()
    namespace = unique("coordination")
    url = (
        with_query(base, prefix=namespace)
        if kind == "redis"
        else with_query(base, schema=namespace)
    )

    def make(**options: float) -> tuple[LeaseCoordinator, LeaseCoordinator]:
        cls = RedisCoordinator if kind == "redis" else PostgresCoordinator
        first, second = cls(url, **options), cls(url, **options)
        made.extend((first, second))
        return first, second

    yield make
    for coordinator in made:
        await coordinator.close()
    if kind == "redis":
        await drop_redis_prefix(base, f"{namespace}-lock")
    else:
        await drop_postgres_schema(base, namespace)


async def test_a_held_session_is_busy_elsewhere_and_others_are_free(pair: Pair) -> None:
    a, b = pair()
    await a.ping()
    async with a.hold(KEY, wait=False):
        with pytest.raises(SessionBusy, match="another process"):
            async with b.hold(KEY, wait=False):
                pass
        async with b.hold(OTHER, wait=False):  # another session: no contention
            pass
    async with b.hold(KEY, wait=False):  # released
        pass


async def test_a_waiter_gets_the_session_after_the_holder_releases(pair: Pair) -> None:
    a, b = pair()
    order: list[str] = []
    holding = asyncio.Event()
    finish = asyncio.Event()

    async def first() -> None:
        async with a.hold(KEY, wait=True):
            order.append("a in")
            holding.set()
            await finish.wait()
            order.append("a out")

    async def second() -> None:
        await holding.wait()
        async with b.hold(KEY, wait=True):
            order.append("b in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await holding.wait()
    finish.set()
    await asyncio.gather(*tasks)
    assert order == ["a in", "a out", "b in"]


async def test_waiting_gives_up_with_a_clear_error(pair: Pair) -> None:
    a, b = pair(wait_timeout=0.3)
    async with a.hold(KEY, wait=False):
        with pytest.raises(SessionBusy, match=r"still busy .* after waiting 0.3s"):
            async with b.hold(KEY, wait=True):
                pass


async def test_a_crashed_holder_blocks_the_session_only_until_expiry(pair: Pair) -> None:
    a, b = pair(ttl=1.0, wait_timeout=DEADLINE)
    assert await a.try_acquire(KEY, "token-of-a-process-that-died")  # never renewed nor released
    with pytest.raises(SessionBusy):
        async with b.hold(KEY, wait=False):
            pass
    async with b.hold(KEY, wait=True):  # succeeds once the lease expires
        assert not await a.try_acquire(KEY, "another-token")


async def test_the_holder_renews_its_lease_while_the_turn_runs(pair: Pair) -> None:
    a, b = pair(ttl=0.6)
    async with a.hold(KEY, wait=False):

        async def renewed_a_few_times() -> bool:
            return a.renewals >= 4  # held well past one ttl

        await eventually(renewed_a_few_times, "lease renewals")
        assert not await b.try_acquire(KEY, "intruder")
    assert a.lost == 0


async def test_only_the_token_holder_can_release(pair: Pair) -> None:
    a, b = pair()
    async with a.hold(KEY, wait=False):
        await b.release(KEY, "not-the-token")
        assert not await b.try_acquire(KEY, "intruder")


async def test_the_lock_is_released_when_the_turn_fails(pair: Pair) -> None:
    a, b = pair()
    with pytest.raises(RuntimeError):
        async with a.hold(KEY, wait=False):
            raise RuntimeError("model failed")
    async with b.hold(KEY, wait=False):
        pass


HOLDER = """
import asyncio, sys
from agenthost.coordination.files import FileLockCoordinator
from agenthost.keys import SessionKey

async def main():
    coordinator = FileLockCoordinator(sys.argv[1])
    async with coordinator.hold(SessionKey("acme", "alice", "s1"), wait=False):
        print("locked", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_file_locks_exclude_other_processes_and_die_with_them(tmp_path: Path) -> None:
    path = tmp_path / "agenthost.db.locks"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert (await child.stdout.readline()).strip() == b"locked"
        here = FileLockCoordinator(path, wait_timeout=DEADLINE)
        with pytest.raises(SessionBusy, match="another worker process"):
            async with here.hold(KEY, wait=False):
                pass
        async with here.hold(OTHER, wait=False):
            pass
        os.kill(child.pid, signal.SIGKILL)  # the kernel drops its locks
        async with here.hold(KEY, wait=True):
            pass
        await here.close()
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
