"""The SessionStore conformance suite, for any backend: agenthost's own and yours.

Every store agenthost ships passes it unchanged. To run it against another
:class:`~agenthost.stores.SessionStore`, import it into a test module and give it a
``store_factory`` fixture: a function that builds a new, unopened store over this
test's data (it is called twice in one test, to check that data survives a close
and a reopen)::

    # tests/test_my_store.py   (needs pytest and pytest-asyncio: agenthost[testing])
    import pytest
    from agenthost.testing import *  # noqa: F403  the tests and their `store` fixture

    @pytest.fixture
    def store_factory(tmp_path):
        return lambda: MyStore(tmp_path / "data")

and, for readable assertion failures, in ``conftest.py``:
``pytest.register_assert_rewrite("agenthost.testing")``. The tests are marked for
pytest-asyncio, so they run in its strict and auto modes alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

try:
    import pytest_asyncio
except ModuleNotFoundError as exc:
    from agenthost.errors import MissingExtra

    raise MissingExtra("testing", "agenthost.testing") from exc

from agenthost.errors import Conflict
from agenthost.events import RunStatus
from agenthost.keys import SessionKey
from agenthost.messages import Message, ToolCall, Usage
from agenthost.stores import RunRecord, SessionStore, WriteBatch
from agenthost.stores.base import PendingApproval

KEY = SessionKey("acme", "alice", "s1")

StoreFactory = Callable[[], SessionStore]
"""Builds a new, unopened store over one test's data (the ``store_factory`` fixture)."""


@pytest_asyncio.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[SessionStore]:
    """An opened store from ``store_factory``, closed after the test."""
    opened = store_factory()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def make_messages(
    first_seq: int, count: int, *, text: str = "m", run_id: str = "run_1"
) -> list[Message]:
    roles = ("user", "assistant")
    return [
        Message(
            roles[(first_seq + i - 1) % 2],  # type: ignore[arg-type]
            f"{text}{first_seq + i}",
            run_id=run_id,
            seq=first_seq + i,
            created_at=1000.0 + first_seq + i,
        )
        for i in range(count)
    ]


async def append(
    store: SessionStore,
    key: SessionKey,
    count: int,
    *,
    now: float = 1000.0,
    text: str = "m",
    run: RunRecord | None = None,
) -> list[Message]:
    """Append ``count`` messages after the session's last seq, as a turn would."""
    base = await store.last_seq(key)
    messages = make_messages(base + 1, count, text=text)
    await store.write(WriteBatch(key, now, base, messages, run))
    return messages


def run_record(
    run_id: str,
    key: SessionKey = KEY,
    status: RunStatus = "running",
    started_at: float = 1000.0,
    **fields: Any,
) -> RunRecord:
    return RunRecord(run_id, key, status, started_at, **fields)


def dicts(messages: list[Message]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in messages]


# -- the message log ---------------------------------------------------------------


async def test_write_then_load_round_trips_every_message_field(store: SessionStore) -> None:
    call = ToolCall("call_1", "lookup", '{"q": "weather in Paris"}')
    messages = [
        Message("user", "what is the weather?", run_id="run_1", seq=1, created_at=1001.5),
        Message("assistant", "", (call,), run_id="run_1", seq=2, created_at=1002.25),
        Message(
            "tool",
            "sunny, 21°C",
            tool_call_id="call_1",
            name="lookup",
            run_id="run_1",
            seq=3,
            created_at=1003.0,
            meta={"error": False, "nested": {"list": [1, 2.5, None]}},
        ),
        Message("assistant", "It is sunny.", run_id="run_1", seq=4, created_at=1004.0),
    ]
    await store.write(WriteBatch(KEY, 1000.0, 0, messages[:1], run_record("run_1")))
    await store.write(WriteBatch(KEY, 1005.0, 1, messages[1:]))

    snapshot = await store.load(KEY, window=10)
    assert snapshot is not None
    assert dicts(snapshot.window) == dicts(messages)
    assert snapshot.window == messages
    record = snapshot.session
    assert record.key == KEY
    assert (record.created_at, record.updated_at) == (1000.0, 1005.0)
    assert (record.last_seq, record.message_count) == (4, 4)
    assert (record.state, record.config, record.pending) == ({}, {}, [])
    assert await store.last_seq(KEY) == 4


async def test_load_returns_only_the_last_n_messages_oldest_first(store: SessionStore) -> None:
    for _ in range(4):
        await append(store, KEY, 3)  # seqs 1..12 in four batches
    snapshot = await store.load(KEY, window=5)
    assert snapshot is not None
    assert [m.seq for m in snapshot.window] == [8, 9, 10, 11, 12]
    assert snapshot.session.message_count == 12
    whole = await store.load(KEY, window=100)
    assert whole is not None
    assert [m.seq for m in whole.window] == list(range(1, 13))


async def test_unknown_session_loads_as_none(store: SessionStore) -> None:
    assert await store.load(KEY, window=10) is None
    assert await store.last_seq(KEY) == 0
    assert await store.messages(KEY) == []
    assert await store.runs(KEY) == []


async def test_a_duplicate_seq_is_a_conflict_and_changes_nothing(store: SessionStore) -> None:
    await append(store, KEY, 2)
    stale = WriteBatch(
        KEY,
        2000.0,
        0,
        make_messages(1, 2, text="other"),
        run_record("run_x"),
        state={"clobbered": True},
    )
    with pytest.raises(Conflict):
        await store.write(stale)
    overlapping = WriteBatch(KEY, 2000.0, 1, make_messages(2, 2, text="other"))
    with pytest.raises(Conflict):
        await store.write(overlapping)

    snapshot = await store.load(KEY, window=10)
    assert snapshot is not None
    assert [m.content for m in snapshot.window] == ["m1", "m2"]
    assert (snapshot.session.last_seq, snapshot.session.message_count) == (2, 2)
    assert snapshot.session.state == {}
    assert await store.get_run("run_x") is None
    # the log continues where it was
    await append(store, KEY, 1)
    assert [m.seq for m in await store.messages(KEY)] == [1, 2, 3]


async def test_concurrent_writers_of_the_same_seq_one_wins(store: SessionStore) -> None:
    await append(store, KEY, 1)
    batches = [
        WriteBatch(KEY, 1001.0 + i, 1, make_messages(2, 2, text=f"writer{i}-")) for i in range(5)
    ]
    results = await asyncio.gather(*(store.write(b) for b in batches), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    stored = await store.messages(KEY)
    assert [m.seq for m in stored] == [1, 2, 3]
    assert len({m.content[:7] for m in stored[1:]}) == 1  # both from one writer


async def test_seqs_stay_contiguous_across_batches(store: SessionStore) -> None:
    for count in (1, 3, 1, 2, 5):
        await append(store, KEY, count)
    stored = await store.messages(KEY)
    assert [m.seq for m in stored] == list(range(1, 13))
    assert await store.last_seq(KEY) == 12


# -- session state, config, pending --------------------------------------------------


async def test_state_config_pending_replace_and_none_keeps(store: SessionStore) -> None:
    await store.write(
        WriteBatch(
            KEY, 1000.0, 0, (), state={"a": 1, "b": {"c": 2}}, config={"model": "x"}, pending=[]
        )
    )
    record = (await store.load(KEY, window=5)).session  # type: ignore[union-attr]
    assert (record.last_seq, record.message_count) == (0, 0)
    assert record.state == {"a": 1, "b": {"c": 2}}
    assert record.config == {"model": "x"}

    await append(store, KEY, 2, now=1001.0)  # None everywhere: all kept
    record = (await store.load(KEY, window=5)).session  # type: ignore[union-attr]
    assert record.state == {"a": 1, "b": {"c": 2}}
    assert record.config == {"model": "x"}
    assert record.pending == []

    pending = [PendingApproval("call_9", "pay", "{}", "run_1")]
    await store.write(
        WriteBatch(KEY, 1002.0, 2, (), state={"z": [1, 2]}, config={}, pending=pending)
    )
    record = (await store.load(KEY, window=5)).session  # type: ignore[union-attr]
    assert record.state == {"z": [1, 2]}  # replaced, not merged
    assert record.config == {}
    assert record.pending == pending
    assert (record.last_seq, record.updated_at, record.created_at) == (2, 1002.0, 1000.0)

    await store.write(WriteBatch(KEY, 1003.0, 2, (), pending=[]))
    record = (await store.load(KEY, window=5)).session  # type: ignore[union-attr]
    assert record.pending == []
    assert record.state == {"z": [1, 2]}


async def test_loaded_state_is_not_shared_with_the_store(store: SessionStore) -> None:
    await store.write(WriteBatch(KEY, 1000.0, 0, (), state={"n": 1}))
    record = (await store.load(KEY, window=1)).session  # type: ignore[union-attr]
    record.state["n"] = 99
    again = (await store.load(KEY, window=1)).session  # type: ignore[union-attr]
    assert again.state == {"n": 1}


# -- runs ------------------------------------------------------------------------------


async def test_runs_upsert_and_running_runs_appear_in_the_snapshot(store: SessionStore) -> None:
    await append(store, KEY, 1, run=run_record("run_1", started_at=1000.0))
    await append(store, KEY, 1, run=run_record("run_2", started_at=1001.0))
    snapshot = await store.load(KEY, window=5)
    assert snapshot is not None
    assert sorted(snapshot.running) == ["run_1", "run_2"]

    done = run_record(
        "run_1",
        status="completed",
        started_at=1000.0,
        finished_at=1002.5,
        usage=Usage(input_tokens=10, output_tokens=5, requests=2),
    )
    await store.write(WriteBatch(KEY, 1003.0, 2, (), done))
    snapshot = await store.load(KEY, window=5)
    assert snapshot is not None
    assert snapshot.running == ["run_2"]

    fetched = await store.get_run("run_1")
    assert fetched is not None
    assert fetched.key == KEY
    assert (fetched.status, fetched.started_at, fetched.finished_at) == (
        "completed",
        1000.0,
        1002.5,
    )
    assert fetched.error is None
    assert fetched.usage.to_dict() == Usage(10, 5, 2).to_dict()
    assert await store.get_run("run_missing") is None

    failed = run_record("run_2", status="failed", started_at=1001.0, finished_at=1004.0)
    failed.error = "model exploded ✗"
    await store.write(WriteBatch(KEY, 1004.0, 2, (), failed))
    fetched = await store.get_run("run_2")
    assert fetched is not None
    assert (fetched.status, fetched.error) == ("failed", "model exploded ✗")
    assert (await store.load(KEY, window=1)).running == []  # type: ignore[union-attr]


async def test_runs_are_listed_newest_first_with_a_limit(store: SessionStore) -> None:
    for i in range(5):
        run = run_record(f"run_{i}", status="completed", started_at=1000.0 + i)
        await append(store, KEY, 2, run=run)
    other = SessionKey("acme", "alice", "s2")
    await append(store, other, 1, run=run_record("run_other", other))
    runs = await store.runs(KEY)
    assert [r.run_id for r in runs] == [f"run_{i}" for i in (4, 3, 2, 1, 0)]
    assert all(r.key == KEY for r in runs)
    assert [r.run_id for r in await store.runs(KEY, limit=2)] == ["run_4", "run_3"]
    assert [r.run_id for r in await store.runs(other)] == ["run_other"]


# -- paging ----------------------------------------------------------------------------


async def test_messages_pages_by_after_seq_and_limit(store: SessionStore) -> None:
    await append(store, KEY, 10)
    assert [m.seq for m in await store.messages(KEY)] == list(range(1, 11))
    assert [m.seq for m in await store.messages(KEY, after_seq=3, limit=4)] == [4, 5, 6, 7]
    assert [m.seq for m in await store.messages(KEY, after_seq=7)] == [8, 9, 10]
    assert [m.seq for m in await store.messages(KEY, limit=2)] == [1, 2]
    assert await store.messages(KEY, after_seq=10) == []
    assert await store.messages(KEY, after_seq=50, limit=5) == []
    pages: list[int] = []
    after = 0
    while page := await store.messages(KEY, after_seq=after, limit=3):
        pages.extend(m.seq for m in page)
        after = page[-1].seq
    assert pages == list(range(1, 11))


# -- listing and counting ------------------------------------------------------------


async def seed_sessions(store: SessionStore) -> dict[str, SessionKey]:
    """Five sessions over two tenants and three users, updated at distinct times."""
    keys = {
        "a1": SessionKey("t1", "alice", "s1"),
        "a2": SessionKey("t1", "alice", "s2"),
        "b1": SessionKey("t1", "bob", "s1"),
        "c1": SessionKey("t2", "alice", "s1"),
        "a3": SessionKey("t1", "alice", "s3"),
    }
    for i, key in enumerate(keys.values()):
        await append(store, key, 1 + i, now=2000.0 + i)
    return keys


async def test_sessions_filter_order_limit_offset(store: SessionStore) -> None:
    k = await seed_sessions(store)

    def ids(records: list[Any]) -> list[SessionKey]:
        return [r.key for r in records]

    assert ids(await store.sessions(tenant_id="t1", user_id="alice")) == [k["a3"], k["a2"], k["a1"]]
    assert ids(await store.sessions(tenant_id="t1")) == [k["a3"], k["b1"], k["a2"], k["a1"]]
    assert ids(await store.sessions()) == [k["a3"], k["c1"], k["b1"], k["a2"], k["a1"]]
    assert ids(await store.sessions(tenant_id="t2", user_id="alice")) == [k["c1"]]
    assert ids(await store.sessions(user_id="alice")) == [k["a3"], k["c1"], k["a2"], k["a1"]]
    assert ids(await store.sessions(tenant_id="t1", limit=2)) == [k["a3"], k["b1"]]
    assert ids(await store.sessions(tenant_id="t1", limit=2, offset=2)) == [k["a2"], k["a1"]]
    assert ids(await store.sessions(tenant_id="t1", offset=3)) == [k["a1"]]
    assert await store.sessions(tenant_id="t1", offset=10) == []
    assert await store.sessions(tenant_id="nobody") == []

    newest = (await store.sessions(tenant_id="t1", user_id="alice", limit=1))[0]
    assert (newest.message_count, newest.last_seq, newest.updated_at) == (5, 5, 2004.0)


async def test_count_sessions_at_every_scope(store: SessionStore) -> None:
    assert await store.count_sessions() == 0
    await seed_sessions(store)
    assert await store.count_sessions() == 5
    assert await store.count_sessions(tenant_id="t1") == 4
    assert await store.count_sessions(tenant_id="t1", user_id="alice") == 3
    assert await store.count_sessions(tenant_id="t2", user_id="alice") == 1
    assert await store.count_sessions(user_id="alice") == 4
    assert await store.count_sessions(tenant_id="t3") == 0


# -- deletion --------------------------------------------------------------------------


async def test_delete_one_session_takes_its_messages_and_runs(store: SessionStore) -> None:
    k = await seed_sessions(store)
    await append(store, k["a1"], 1, now=3000.0, run=run_record("run_a1", k["a1"]))
    await store.set_memory("t1", "alice", {"likes": "tea"})

    assert await store.delete(tenant_id="t1", user_id="alice", session_id="s1") == 1
    assert await store.load(k["a1"], window=5) is None
    assert await store.messages(k["a1"]) == []
    assert await store.runs(k["a1"]) == []
    assert await store.get_run("run_a1") is None
    assert await store.last_seq(k["a1"]) == 0
    assert await store.count_sessions() == 4
    # same session id elsewhere is untouched, and so is the user's memory
    assert await store.load(k["b1"], window=5) is not None
    assert await store.load(k["c1"], window=5) is not None
    assert await store.get_memory("t1", "alice") == {"likes": "tea"}
    assert await store.delete(tenant_id="t1", user_id="alice", session_id="s1") == 0
    # a deleted session starts again from seq 1
    await append(store, k["a1"], 2, now=3001.0)
    assert [m.seq for m in await store.messages(k["a1"])] == [1, 2]


async def test_delete_a_user_erases_sessions_and_memory(store: SessionStore) -> None:
    k = await seed_sessions(store)
    await store.set_memory("t1", "alice", {"likes": "tea"})
    await store.set_memory("t1", "bob", {"likes": "coffee"})
    await store.set_memory("t2", "alice", {"likes": "juice"})

    assert await store.delete(tenant_id="t1", user_id="alice") == 3
    for name in ("a1", "a2", "a3"):
        assert await store.load(k[name], window=5) is None
    assert await store.get_memory("t1", "alice") == {}
    assert await store.get_memory("t1", "bob") == {"likes": "coffee"}
    assert await store.get_memory("t2", "alice") == {"likes": "juice"}
    assert [r.key for r in await store.sessions()] == [k["c1"], k["b1"]]
    assert await store.delete(tenant_id="t1", user_id="alice") == 0


async def test_delete_a_tenant_and_everything(store: SessionStore) -> None:
    k = await seed_sessions(store)
    await store.set_memory("t1", "bob", {"x": 1})
    await store.set_memory("t2", "alice", {"y": 2})

    assert await store.delete(tenant_id="t1") == 4
    assert [r.key for r in await store.sessions()] == [k["c1"]]
    assert await store.get_memory("t1", "bob") == {}
    assert await store.get_memory("t2", "alice") == {"y": 2}

    assert await store.delete() == 1
    assert await store.count_sessions() == 0
    assert await store.sessions() == []
    assert await store.get_memory("t2", "alice") == {}
    assert await store.messages(k["c1"]) == []


async def test_delete_scope_must_be_nested(store: SessionStore) -> None:
    with pytest.raises(ValueError):
        await store.delete(tenant_id="t1", session_id="s1")
    with pytest.raises(ValueError):
        await store.delete(user_id="alice")


async def test_delete_idle_takes_only_old_sessions_up_to_the_limit(store: SessionStore) -> None:
    k = await seed_sessions(store)  # updated at 2000 .. 2004
    await append(store, k["a1"], 1, now=2010.0)  # a1 is fresh again

    assert await store.delete_idle(before=2003.0, limit=1) == 1
    assert await store.count_sessions() == 4
    assert await store.delete_idle(before=2003.0, limit=10) == 1  # the other of a2, b1
    survivors = {r.key for r in await store.sessions()}
    assert survivors == {k["a1"], k["c1"], k["a3"]}
    assert await store.delete_idle(before=2003.0, limit=10) == 0
    assert await store.delete_idle(before=2004.5, limit=10) == 2  # c1 (2003) and a3 (2004)
    assert [r.key for r in await store.sessions()] == [k["a1"]]


# -- memory ----------------------------------------------------------------------------


async def test_user_memory_get_set(store: SessionStore) -> None:
    assert await store.get_memory("t1", "alice") == {}
    await store.set_memory("t1", "alice", {"name": "Alice", "facts": ["likes tea"]})
    assert await store.get_memory("t1", "alice") == {"name": "Alice", "facts": ["likes tea"]}
    await store.set_memory("t1", "alice", {"name": "Al"})
    assert await store.get_memory("t1", "alice") == {"name": "Al"}  # replaced
    assert await store.get_memory("t1", "bob") == {}
    assert await store.get_memory("t2", "alice") == {}
    memory = await store.get_memory("t1", "alice")
    memory["name"] = "changed"
    assert await store.get_memory("t1", "alice") == {"name": "Al"}


# -- isolation -------------------------------------------------------------------------


async def test_same_session_id_of_two_users_and_two_tenants_are_separate(
    store: SessionStore,
) -> None:
    alice = SessionKey("t1", "alice", "s1")
    bob = SessionKey("t1", "bob", "s1")
    other_tenant = SessionKey("t2", "alice", "s1")
    await append(store, alice, 3, text="alice-")
    await append(store, bob, 1, text="bob-")
    await store.write(WriteBatch(other_tenant, 1000.0, 0, (), state={"tenant": 2}))
    await store.write(WriteBatch(alice, 1000.0, 3, (), state={"owner": "alice"}))

    assert [m.content for m in await store.messages(alice)] == ["alice-1", "alice-2", "alice-3"]
    assert [m.content for m in await store.messages(bob)] == ["bob-1"]
    assert await store.messages(other_tenant) == []
    bob_record = (await store.load(bob, window=5)).session  # type: ignore[union-attr]
    assert bob_record.state == {}
    tenant_record = (await store.load(other_tenant, window=5)).session  # type: ignore[union-attr]
    assert tenant_record.state == {"tenant": 2}
    assert await store.last_seq(bob) == 1
    # bob writing seq 2 is no conflict with alice's seq 2
    await append(store, bob, 1, text="bob-")
    assert await store.last_seq(bob) == 2


async def test_unicode_and_emoji_in_ids_content_and_state(store: SessionStore) -> None:
    key = SessionKey("租户 🏢", "用户 José 👩‍💻", "セッション:1/\"'%_*?[x]")
    content = 'Привет 👋🏽 — «quotes» "double" \\ back\nnew line\ttab 𝕏 \x00 nul'
    state = {"名前": "アリス", "emoji": "🎉", "nested": {"ключ": ["значение", 1.5]}}
    messages = [Message("user", content, run_id="run_✓", seq=1, created_at=1.0)]
    await store.write(WriteBatch(key, 1000.0, 0, messages, run_record("run_✓", key), state=state))

    snapshot = await store.load(key, window=5)
    assert snapshot is not None
    assert snapshot.window[0].content == content
    assert snapshot.session.state == state
    assert snapshot.running == ["run_✓"]
    assert [r.key for r in await store.sessions(tenant_id="租户 🏢")] == [key]
    assert await store.count_sessions(tenant_id="租户 🏢", user_id="用户 José 👩‍💻") == 1
    run = await store.get_run("run_✓")
    assert run is not None
    assert run.key == key
    await store.set_memory(key.tenant_id, key.user_id, {"😀": "ok"})
    assert await store.get_memory(key.tenant_id, key.user_id) == {"😀": "ok"}
    # glob and LIKE characters in ids match literally
    assert await store.count_sessions(tenant_id="租户 *") == 0
    assert await store.delete(tenant_id=key.tenant_id, user_id=key.user_id) == 1
    assert await store.get_memory(key.tenant_id, key.user_id) == {}


# -- concurrency and durability --------------------------------------------------------


async def test_concurrent_turns_on_many_sessions(store: SessionStore) -> None:
    keys = [SessionKey("t1", f"user{i % 10}", f"s{i}") for i in range(40)]

    async def converse(key: SessionKey) -> None:
        for turn in range(5):
            base = turn * 2
            await store.write(
                WriteBatch(key, 1000.0 + turn, base, make_messages(base + 1, 1, text=f"{key}#"))
            )
            await asyncio.sleep(0)
            await store.write(
                WriteBatch(key, 1000.5 + turn, base + 1, make_messages(base + 2, 1, text=f"{key}#"))
            )

    await asyncio.gather(*(converse(k) for k in keys))
    assert await store.count_sessions(tenant_id="t1") == 40
    for key in keys:
        stored = await store.messages(key)
        assert [m.seq for m in stored] == list(range(1, 11))
        assert [m.role for m in stored] == ["user", "assistant"] * 5
        assert all(m.content.startswith(f"{key}#") for m in stored)


async def test_everything_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    """Durable backends reopen their data; the memory backend reopens the same object."""
    first = store_factory()
    await first.open()
    await append(first, KEY, 3, run=run_record("run_p"))
    await first.write(WriteBatch(KEY, 1001.0, 3, (), state={"k": "v"}, config={"model": "m"}))
    await first.set_memory("acme", "alice", {"remember": True})
    await first.close()

    second = store_factory()
    await second.open()
    try:
        snapshot = await second.load(KEY, window=10)
        assert snapshot is not None
        assert [m.content for m in snapshot.window] == ["m1", "m2", "m3"]
        assert snapshot.session.state == {"k": "v"}
        assert snapshot.session.config == {"model": "m"}
        assert snapshot.running == ["run_p"]
        assert await second.get_memory("acme", "alice") == {"remember": True}
        await append(second, KEY, 1)
        assert await second.last_seq(KEY) == 4
    finally:
        await second.close()


async def test_ping_and_open_are_idempotent(store: SessionStore) -> None:
    await store.ping()
    await store.open()
    await store.ping()


# Marked here, not by the importing module: pytest-asyncio's strict mode runs them too.
for _name, _test in list(globals().items()):
    if _name.startswith("test_"):
        globals()[_name] = pytest.mark.asyncio(_test)

__all__ = ["store", *(name for name in globals() if name.startswith("test_"))]
