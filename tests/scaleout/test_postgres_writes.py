"""PostgreSQL's writes: the session lease folded into them, and group commit.

Against a real PostgreSQL. Two coordinator/store pairs on one schema stand for
two server processes (each has its own pool); the tests with real processes are
in test_serve_processes.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from agenthost.agent import Agent
from agenthost.coordination.postgres import PostgresCoordinator
from agenthost.errors import Conflict, InvalidInput, SessionBusy, SessionErased
from agenthost.host import Host
from agenthost.keys import SessionKey
from agenthost.live import LiveSessionCache
from agenthost.messages import Message
from agenthost.session import Sessions
from agenthost.stores.base import Lease, RunRecord, WriteBatch
from agenthost.stores.postgres import PostgresStore
from support.services import postgres_url, unique

KEY = SessionKey("acme", "alice", "s1")
DEADLINE = 20.0


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Process:
    """A store and a PostgreSQL coordinator folded into it, as one server process has."""

    def __init__(self, url: str, **options: float) -> None:
        self.store = PostgresStore(url)
        self.coordinator = PostgresCoordinator(url, **options)
        self.sessions = Sessions(
            self.store,
            window=20,
            cache=LiveSessionCache(max_live=100, ttl=None),
            coordinator=self.coordinator,
            clock=time.time,
        )

    async def close(self) -> None:
        await self.coordinator.close()
        await self.store.close()


@pytest.fixture
async def url() -> AsyncIterator[str]:
    schema = unique("pgwrites")
    yield f"{postgres_url()}?schema={schema}"
    conn = await asyncpg.connect(postgres_url())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def processes(url: str) -> AsyncIterator[Callable[..., Process]]:
    made: list[Process] = []

    def make(**options: float) -> Process:
        process = Process(url, **options)
        made.append(process)
        return process

    yield make
    for process in made:
        await process.close()


async def lease_tokens(store: PostgresStore, key: SessionKey = KEY) -> list[str]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT token FROM session_leases WHERE tenant_id = $1 AND user_id = $2 "
            "AND session_id = $3 AND expires_at > clock_timestamp()",
            key.tenant_id,
            key.user_id,
            key.session_id,
        )
    return [r[0] for r in rows]


async def test_the_coordinator_folds_only_into_a_store_of_its_own_database(url: str) -> None:
    coordinator = PostgresCoordinator(url)
    assert coordinator.fold(PostgresStore(url)) is coordinator
    assert PostgresCoordinator(url).fold(PostgresStore(url + "_other")) is None
    assert PostgresCoordinator(postgres_url()).fold(PostgresStore(url)) is None  # schema


async def test_a_turns_first_write_takes_the_lease_and_its_last_gives_it_back(
    processes: Callable[..., Process],
) -> None:
    process = processes()
    await process.store.open()
    sessions = process.sessions
    assert sessions.folding is process.coordinator
    async with sessions.locked(KEY, wait=True):
        assert await lease_tokens(process.store) == []  # the hold itself took nothing
        lease = process.coordinator.lease(KEY)
        assert lease is not None and not lease.held
        live = await sessions.live(KEY, create=True)
        assert live is not None
        run = RunRecord("run_1", KEY, "running", time.time())
        await sessions.commit(live, [Message("user", "hi", run_id="run_1")], run=run)
        assert lease.held
        assert await lease_tokens(process.store) == [lease.token]
        run.status = "completed"
        await sessions.commit(live, [Message("assistant", "hello", run_id="run_1")], run=run)
        assert not lease.held
        assert await lease_tokens(process.store) == []  # given back with the write
        sessions.release(live)
    stored = await process.store.get_run("run_1")
    assert stored is not None and stored.status == "completed"


async def test_a_write_waits_for_a_lease_held_elsewhere_and_starts_over_on_the_truth(
    processes: Callable[..., Process],
) -> None:
    here, there = processes(), processes()
    host = Host(Agent(name="a", model="offline"), store=here.store, coordinator=here.coordinator)
    await host.start()
    try:
        await host.run("My name is Alice", user_id="alice")  # live here, cached
        key = SessionKey("default", "alice", "default")
        # another process runs a turn: it holds the lease and writes the session
        assert await there.coordinator.try_acquire(key, "their-turn")
        live = await there.sessions.load(key, create=False)
        assert live is not None
        await there.sessions.commit(live, [Message("user", "elsewhere", run_id="r2")])

        turn = asyncio.create_task(host.run("What is my name?", user_id="alice"))

        async def refused_once() -> bool:
            return host.runtime.conflicts >= 1 or turn.done()

        await eventually(refused_once, "the write refused on the lease")
        assert not turn.done()  # waiting for the lease: no model call, nothing stored
        assert [m.content for m in await here.store.messages(key)] == [
            "My name is Alice",
            "Nice to meet you, Alice!",
            "elsewhere",
        ]
        await there.coordinator.release(key, "their-turn")
        result = await asyncio.wait_for(turn, DEADLINE)
        assert "Alice" in result.text
        history = await here.store.messages(key)
        assert [m.content for m in history[2:4]] == ["elsewhere", "What is my name?"]
        assert [m.seq for m in history] == [1, 2, 3, 4, 5]
        assert await lease_tokens(here.store, key) == []
    finally:
        await host.close()


async def test_with_the_reject_policy_a_lease_held_elsewhere_refuses_the_turn(
    processes: Callable[..., Process],
) -> None:
    here, there = processes(), processes()
    host = Host(
        Agent(name="a", model="offline"),
        store=here.store,
        coordinator=here.coordinator,
        policy="reject",
    )
    await host.start()
    try:
        key = SessionKey("default", "bob", "default")
        assert await there.coordinator.try_acquire(key, "their-turn")
        with pytest.raises(SessionBusy):
            await host.run("hello", user_id="bob")
        assert await here.store.messages(key) == []
    finally:
        await host.close()


async def test_a_long_turn_keeps_its_folded_lease(processes: Callable[..., Process]) -> None:
    here, there = processes(ttl=0.6), processes(ttl=0.6)
    await here.store.open()
    sessions = here.sessions
    async with sessions.locked(KEY, wait=True):
        live = await sessions.live(KEY, create=True)
        assert live is not None
        run = RunRecord("run_1", KEY, "running", time.time())
        await sessions.commit(live, [Message("user", "think hard", run_id="run_1")], run=run)

        async def renewed_a_few_times() -> bool:
            return here.coordinator.renewals >= 3  # held well past one ttl

        await eventually(renewed_a_few_times, "lease renewals")
        assert not await there.coordinator.try_acquire(KEY, "intruder")
        run.status = "completed"
        await sessions.commit(live, [Message("assistant", "done", run_id="run_1")], run=run)
        sessions.release(live)
    assert here.coordinator.lost == 0
    assert await there.coordinator.try_acquire(KEY, "next")


async def test_a_run_left_open_is_closed_only_under_the_lease(
    processes: Callable[..., Process],
) -> None:
    """A load that finds a running run takes the lease first: while another process's
    turn holds it, that run is its, not a dead one's."""
    here, there = processes(), processes()
    await there.store.open()
    assert await there.coordinator.try_acquire(KEY, "alive-elsewhere")
    now = time.time()
    await there.store.write(
        WriteBatch(
            KEY,
            now,
            0,
            [Message("user", "q", run_id="run_x", seq=1)],
            RunRecord("run_x", KEY, "running", now),
        )
    )
    await here.store.open()
    attempts: list[str] = []
    try_acquire = here.coordinator.try_acquire

    async def counted(key: SessionKey, token: str) -> bool:  # a spy: the real thing, counted
        attempts.append(token)
        return await try_acquire(key, token)

    here.coordinator.try_acquire = counted  # type: ignore[method-assign]
    async with here.sessions.locked(KEY, wait=True):
        loading = asyncio.create_task(here.sessions.live(KEY, create=True))

        async def waiting_for_the_lease() -> bool:
            return len(attempts) >= 2 or loading.done()

        await eventually(waiting_for_the_lease, "attempts to take the lease")
        stored = await there.store.get_run("run_x")
        assert stored is not None and stored.status == "running"
        assert not loading.done()
        await there.coordinator.release(KEY, "alive-elsewhere")
        live = await asyncio.wait_for(loading, DEADLINE)
        assert live is not None
        here.sessions.release(live)
    stored = await there.store.get_run("run_x")
    assert stored is not None and stored.status == "interrupted"


# -- group commit ---------------------------------------------------------------------


def batch(key: SessionKey, base_seq: int, base_revision: int, text: str) -> WriteBatch:
    run_id = f"run_{key.user_id}_{base_seq}"
    return WriteBatch(
        key,
        time.time(),
        base_seq,
        [Message("user", text, run_id=run_id, seq=base_seq + 1)],
        RunRecord(run_id, key, "running", time.time()),
        state={"n": base_seq},
        base_revision=base_revision,
    )


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url)
    await store.open()
    yield store
    await store.close()


async def test_concurrent_writes_share_statements_and_each_gets_its_own_answer(
    store: PostgresStore,
) -> None:
    keys = [SessionKey("t", f"user{i}", "s") for i in range(40)]
    first = [batch(k, 0, 0, "first") for k in keys]
    await asyncio.gather(*(store.write(b) for b in first))
    group = store._writes
    assert group.groups >= 1 and group.grouped > group.groups  # several writes a statement

    # the second round: every other write is stale (a wrong base revision), one is erased
    await store.delete(tenant_id="t", user_id="user1", session_id="s")
    second = [
        batch(k, 1, first[i].revision if i % 2 == 0 else 12345, "second")
        for i, k in enumerate(keys)
    ]
    outcomes = await asyncio.gather(*(store.write(b) for b in second), return_exceptions=True)
    for i, outcome in enumerate(outcomes):
        if i == 1:
            assert isinstance(outcome, SessionErased)
        elif i % 2:
            assert type(outcome) is Conflict
        else:
            assert outcome is None
    snapshots = await asyncio.gather(*(store.load(key, window=5) for key in keys))
    assert store._loads.groups >= 1  # loads made together went together too
    for i, (key, snapshot) in enumerate(zip(keys, snapshots, strict=True)):
        texts = [m.content for m in await store.messages(key)]
        assert texts == ([] if i == 1 else ["first", "second"] if i % 2 == 0 else ["first"])
        if i == 1:
            assert snapshot is None
            continue
        assert snapshot is not None and snapshot.session.key == key
        assert snapshot.session.created_at == first[i].now
        assert snapshot.session.revision == (second[i] if i % 2 == 0 else first[i]).revision
        assert [m.content for m in snapshot.window] == texts
        assert snapshot.session.state == {"n": 1 if i % 2 == 0 else 0}
        assert snapshot.running == sorted({m.run_id for m in snapshot.window})


async def test_a_write_the_database_refuses_fails_alone_not_its_group(
    store: PostgresStore,
) -> None:
    keys = [SessionKey("t", f"user{i}", "s") for i in range(30)]
    batches = [batch(k, 0, 0, "hello") for k in keys]
    batches[7].state = {"bad": "nul \u0000 in JSONB"}  # PostgreSQL cannot store it
    outcomes = await asyncio.gather(*(store.write(b) for b in batches), return_exceptions=True)
    assert isinstance(outcomes[7], InvalidInput)
    assert [o for i, o in enumerate(outcomes) if i != 7] == [None] * 29
    assert await store.messages(keys[7]) == []
    assert len(await store.messages(keys[8])) == 1


async def test_grouped_writes_take_and_give_back_leases(url: str, store: PostgresStore) -> None:
    other = PostgresCoordinator(url)
    try:
        keys = [SessionKey("t", f"user{i}", "s") for i in range(20)]
        assert await other.try_acquire(keys[3], "theirs")
        leases = [Lease(k, f"token{i}", 15.0, True) for i, k in enumerate(keys)]
        batches = [batch(k, 0, 0, "hi") for k in keys]
        for b, lease in zip(batches, leases, strict=True):
            b.lease = lease
        outcomes = await asyncio.gather(*(store.write(b) for b in batches), return_exceptions=True)
        assert isinstance(outcomes[3], SessionBusy)
        assert [lease.held for lease in leases] == [i != 3 for i in range(20)]
        assert await store.messages(keys[3]) == []
        assert await lease_tokens(store, keys[5]) == ["token5"]
        done = [batch(k, 1, batches[i].revision or 0, "bye") for i, k in enumerate(keys)]
        for i, b in enumerate(done):
            b.lease, b.release = leases[i], True
        del done[3]
        await asyncio.gather(*(store.write(b) for b in done))
        assert not any(lease.held for lease in leases)
        assert await lease_tokens(store, keys[5]) == []
        assert await lease_tokens(store, keys[3]) == ["theirs"]
    finally:
        await other.close()
