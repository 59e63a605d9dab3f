"""The conformance suite's long-term memory and session summaries (part of
:mod:`agenthost.testing`, which imports these tests: use that module).

Records round-trip, list newest first, search ranks by relevance with each
store's own index, fenced writes are refused once their session moved or went,
the per-user cap holds under concurrency, erasure takes memories and their index
entries, and summaries are appended with the session's checked writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agenthost.errors import Conflict, QuotaExceeded
from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores import SessionStore, WriteBatch
from agenthost.stores.base import MemoryFence, MemoryRecord, SessionSummary
from agenthost.stores.search import query_terms

KEY = SessionKey("t1", "alice", "s1")


def memory(
    memory_id: str,
    text: str,
    *,
    tenant_id: str = "t1",
    user_id: str = "alice",
    at: float = 1000.0,
    **fields: Any,
) -> MemoryRecord:
    return MemoryRecord(memory_id, tenant_id, user_id, text, created_at=at, updated_at=at, **fields)


async def add(store: SessionStore, *records: MemoryRecord) -> None:
    for record in records:
        await store.add_memory(record)


async def found(
    store: SessionStore, query: str, *, user_id: str = "alice", limit: int = 10
) -> list[str]:
    hits = await store.search_memories("t1", user_id, query_terms(query), limit=limit)
    return [record.memory_id for record, _score in hits]


async def session_at(store: SessionStore, key: SessionKey = KEY) -> int:
    """Create the session (one message) and return its revision."""
    batch = WriteBatch(key, 1000.0, 0, [Message("user", "hi", seq=1, created_at=1000.0)])
    await store.write(batch)
    return batch.new_revision()


# -- records ---------------------------------------------------------------------------


async def test_a_memory_round_trips_every_field(store: SessionStore) -> None:
    record = memory(
        "mem_1",
        "Alice prefers tea ☕ and speaks 日本語\nsecond line",
        kind="preference",
        tags=["drinks", "日本"],
        session_id="s1",
        run_id="run_1",
        revision=42,
        embedding=[0.5, -0.25, 1.0],
        at=1234.5,
    )
    await store.add_memory(record)
    loaded = await store.get_memory("t1", "alice", "mem_1")
    assert loaded is not None
    assert loaded.to_dict() == record.to_dict()
    assert loaded.embedding is None  # only asked for when ranking
    (listed,) = await store.list_memories("t1", "alice", embeddings=True)
    assert listed.embedding == [0.5, -0.25, 1.0]
    ((hit, score),) = await store.search_memories(
        "t1", "alice", query_terms("tea"), limit=5, embeddings=True
    )
    assert hit.to_dict() == record.to_dict() and hit.embedding == [0.5, -0.25, 1.0]
    assert score > 0
    assert await store.get_memory("t1", "alice", "mem_2") is None
    bare = memory("mem_2", "no extras")
    await store.add_memory(bare)
    got = await store.get_memory("t1", "alice", "mem_2")
    assert got is not None and got.to_dict() == bare.to_dict()
    assert (got.kind, got.tags, got.session_id, got.run_id) == (None, [], None, None)


async def test_an_id_is_added_once(store: SessionStore) -> None:
    await store.add_memory(memory("mem_1", "first"))
    with pytest.raises(Conflict):
        await store.add_memory(memory("mem_1", "second"))
    got = await store.get_memory("t1", "alice", "mem_1")
    assert got is not None and got.text == "first"
    assert await found(store, "second") == []
    assert await store.count_memories("t1", "alice") == 1


async def test_listing_is_newest_first_with_limit_and_offset(store: SessionStore) -> None:
    await add(store, *(memory(f"mem_{i}", f"fact {i}", at=1000.0 + i) for i in range(7)))
    await store.add_memory(memory("mem_b", "same time", at=1006.0))  # ties: id descending
    listed = [r.memory_id for r in await store.list_memories("t1", "alice")]
    assert listed == ["mem_b", "mem_6", "mem_5", "mem_4", "mem_3", "mem_2", "mem_1", "mem_0"]
    page = await store.list_memories("t1", "alice", limit=3, offset=2)
    assert [r.memory_id for r in page] == ["mem_5", "mem_4", "mem_3"]
    assert await store.list_memories("t1", "alice", limit=3, offset=8) == []
    assert await store.list_memories("t1", "alice", limit=0) == []
    assert await store.count_memories("t1", "alice") == 8
    assert await store.count_memories("t1", "bob") == 0


async def test_replace_is_checked_against_the_revision(store: SessionStore) -> None:
    original = memory(
        "mem_1", "likes green tea", kind="pref", session_id="s1", run_id="r1", revision=1
    )
    await store.add_memory(original)
    changed = memory("mem_1", "likes black coffee", tags=["drinks"], revision=2, at=2000.0)
    assert await store.replace_memory(changed, base_revision=1)
    got = await store.get_memory("t1", "alice", "mem_1")
    assert got is not None
    assert (got.text, got.kind, got.tags, got.revision) == (
        "likes black coffee",
        None,
        ["drinks"],
        2,
    )
    assert (got.created_at, got.updated_at) == (1000.0, 2000.0)  # created stays
    assert (got.session_id, got.run_id) == ("s1", "r1")  # so does the source
    assert await found(store, "tea") == []  # the index follows the text
    assert await found(store, "coffee drinks") == ["mem_1"]

    stale = memory("mem_1", "likes juice", revision=3, at=3000.0)
    assert not await store.replace_memory(stale, base_revision=1)
    got = await store.get_memory("t1", "alice", "mem_1")
    assert got is not None and got.text == "likes black coffee"
    assert await found(store, "juice") == []
    assert not await store.replace_memory(memory("mem_x", "nobody", revision=2), base_revision=0)


async def test_delete_removes_the_memory_and_its_index_entries(store: SessionStore) -> None:
    await add(store, memory("mem_1", "the cat is called Tom"), memory("mem_2", "the dog is Rex"))
    assert await store.delete_memory("t1", "alice", "mem_1")
    assert not await store.delete_memory("t1", "alice", "mem_1")
    assert await store.get_memory("t1", "alice", "mem_1") is None
    assert await found(store, "cat tom") == []
    assert await found(store, "dog") == ["mem_2"]
    assert await store.count_memories("t1", "alice") == 1
    await store.add_memory(memory("mem_1", "a new cat"))  # the id is free again
    assert await found(store, "cat") == ["mem_1"]
    for memory_id in ("mem_1", "mem_2"):
        assert await store.delete_memory("t1", "alice", memory_id)
    assert await found(store, "cat dog") == []  # a user whose memories are all gone
    assert await store.list_memories("t1", "alice") == []


# -- search ----------------------------------------------------------------------------


async def test_search_ranks_by_relevance_and_drops_what_does_not_match(store: SessionStore) -> None:
    await add(
        store,
        memory("mem_name", "The user's name is Alice"),
        memory("mem_city", "Alice lives in Paris"),
        memory("mem_both", "Alice's favourite city is Paris, her name means noble"),
        memory("mem_tea", "likes green tea"),
        *(memory(f"mem_pad{i}", f"unrelated note number {i}") for i in range(6)),
    )
    assert (await found(store, "What is my name?"))[0] in ("mem_name", "mem_both")
    assert set(await found(store, "What is my name?")) == {"mem_name", "mem_both"}
    assert (await found(store, "paris name"))[0] == "mem_both"  # matches both terms
    assert set(await found(store, "Paris")) == {"mem_city", "mem_both"}
    assert await found(store, "TEA") == ["mem_tea"]  # case does not matter
    assert await found(store, "the of is") == []  # nothing but stop words
    assert await found(store, "quantum") == []
    assert len(await found(store, "note", limit=4)) == 4
    assert await store.search_memories("t1", "alice", [], limit=5) == []
    assert await store.search_memories("t1", "alice", ["alice"], limit=0) == []


async def test_search_finds_plurals_tags_kinds_and_cjk(store: SessionStore) -> None:
    await add(
        store,
        memory("mem_names", "names of the user's children: Ann and Ben"),
        memory("mem_tag", "prefers the window seat", tags=["travel"]),
        memory("mem_kind", "allergic to peanuts", kind="health"),
        memory("mem_zh", "我叫张三，住在北京"),
        memory("mem_ko", "제 이름은 민수입니다"),
    )
    assert await found(store, "name") == ["mem_names"]
    assert await found(store, "travel") == ["mem_tag"]
    assert await found(store, "health") == ["mem_kind"]
    assert await found(store, "张三是谁") == ["mem_zh"]
    assert await found(store, "北京") == ["mem_zh"]
    assert await found(store, "민수") == ["mem_ko"]


async def test_equal_scores_put_the_most_recently_updated_first(store: SessionStore) -> None:
    await add(
        store,
        memory("mem_a", "blue", at=1000.0),
        memory("mem_b", "blue", at=3000.0),
        memory("mem_c", "blue", at=2000.0),
    )
    assert await found(store, "blue") == ["mem_b", "mem_c", "mem_a"]


async def test_odd_text_is_searchable_and_never_breaks_a_query(store: SessionStore) -> None:
    odd = "quotes \" and ' and \\ back, AND OR NOT NEAR ( ) * : ^ - {x} 100% _under_score_ 𝔘𝔫𝔦"
    await store.add_memory(memory("mem_odd", odd))
    for query in (odd, '"', "AND", "NEAR(", "_under_score_", "x" * 500, "a" * 70 + " under"):
        hits = await found(store, query)
        assert hits in ([], ["mem_odd"]), query
    assert await found(store, "under_score") == ["mem_odd"]
    assert await found(store, "and or not near") == ["mem_odd"]


# -- isolation ---------------------------------------------------------------------------


async def test_users_and_tenants_never_see_each_others_memories(store: SessionStore) -> None:
    await add(
        store,
        memory("mem_1", "my name is Alice", tenant_id="t1", user_id="alice"),
        memory("mem_1", "my name is Bob", tenant_id="t1", user_id="bob"),
        memory("mem_1", "my name is Other Alice", tenant_id="t2", user_id="alice"),
    )
    for tenant, user, text in (
        ("t1", "alice", "my name is Alice"),
        ("t1", "bob", "my name is Bob"),
        ("t2", "alice", "my name is Other Alice"),
    ):
        got = await store.get_memory(tenant, user, "mem_1")
        assert got is not None and got.text == text
        hits = await store.search_memories(tenant, user, query_terms("name"), limit=10)
        assert [h.text for h, _ in hits] == [text]
        assert [r.text for r in await store.list_memories(tenant, user)] == [text]
    assert await store.search_memories("t1", "carol", query_terms("name"), limit=10) == []
    assert await store.delete_memory("t1", "bob", "mem_1")
    assert await store.get_memory("t1", "alice", "mem_1") is not None
    assert await store.get_memory("t2", "alice", "mem_1") is not None


# -- fences and the cap --------------------------------------------------------------------


async def test_fenced_writes_need_the_session_at_its_revision(store: SessionStore) -> None:
    revision = await session_at(store)
    fence = MemoryFence(KEY, revision)
    await store.add_memory(memory("mem_1", "kept", revision=1), fence=fence)
    assert await store.replace_memory(
        memory("mem_1", "changed", revision=2), base_revision=1, fence=fence
    )

    stale = MemoryFence(KEY, revision + 1)
    with pytest.raises(Conflict):
        await store.add_memory(memory("mem_2", "refused"), fence=stale)
    with pytest.raises(Conflict):
        await store.replace_memory(
            memory("mem_1", "refused", revision=3), base_revision=2, fence=stale
        )
    with pytest.raises(Conflict):
        await store.delete_memory("t1", "alice", "mem_1", fence=stale)
    with pytest.raises(Conflict):  # no such session
        await store.add_memory(
            memory("mem_3", "refused"), fence=MemoryFence(SessionKey("t1", "alice", "s9"), 1)
        )
    assert [r.text for r in await store.list_memories("t1", "alice")] == ["changed"]

    await store.delete(tenant_id="t1", user_id="alice", session_id="s1")  # an erased session
    with pytest.raises(Conflict):
        await store.add_memory(memory("mem_4", "written back?"), fence=fence)
    assert await store.get_memory("t1", "alice", "mem_4") is None
    assert await store.delete_memory("t1", "alice", "mem_1")  # unfenced: the application's


async def test_the_cap_holds_even_for_concurrent_adds(store: SessionStore) -> None:
    await add(store, *(memory(f"mem_{i}", f"fact {i}") for i in range(3)))
    with pytest.raises(QuotaExceeded):
        await store.add_memory(memory("mem_x", "one too many"), cap=3)
    await store.add_memory(memory("mem_b", "another user", user_id="bob"), cap=3)

    async def try_add(i: int) -> bool:
        try:
            await store.add_memory(memory(f"mem_c{i}", f"carol {i}", user_id="carol"), cap=5)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(try_add(i) for i in range(12)))
    assert sum(results) == 5
    assert await store.count_memories("t1", "carol") == 5
    assert await store.count_memories("t1", "alice") == 3


async def test_concurrent_adds_for_one_user_all_land(store: SessionStore) -> None:
    await asyncio.gather(
        *(store.add_memory(memory(f"mem_{i}", f"topic{i} shared")) for i in range(40))
    )
    assert await store.count_memories("t1", "alice") == 40
    assert len(await found(store, "shared", limit=100)) == 40
    assert await found(store, "topic17") == ["mem_17"]


# -- erasure -----------------------------------------------------------------------------


async def test_erasing_a_user_takes_their_memories_and_index(store: SessionStore) -> None:
    await session_at(store)
    await add(
        store,
        memory("mem_1", "alice's secret is tulips"),
        memory("mem_2", "bob's secret is roses", user_id="bob"),
        memory("mem_3", "other tenant's secret is lilies", tenant_id="t2"),
    )
    await store.delete(tenant_id="t1", user_id="alice", session_id="s1")
    assert await store.count_memories("t1", "alice") == 1  # one session is not the user

    assert await store.delete(tenant_id="t1", user_id="alice") == 0
    assert await store.count_memories("t1", "alice") == 0
    assert await store.get_memory("t1", "alice", "mem_1") is None
    assert await found(store, "secret tulips") == []
    assert await found(store, "secret", user_id="bob") == ["mem_2"]
    await store.add_memory(memory("mem_1", "a fresh start"))  # nothing left behind
    assert await found(store, "tulips fresh") == ["mem_1"]
    assert await store.count_memories("t1", "alice") == 1


async def test_erasing_a_tenant_or_everything_takes_every_users_memories(
    store: SessionStore,
) -> None:
    await add(
        store,
        memory("mem_1", "a", user_id="alice"),
        memory("mem_2", "b", user_id="bob"),
        memory("mem_3", "c", tenant_id="t2"),
    )
    await store.delete(tenant_id="t1")
    assert await store.count_memories("t1", "alice") == await store.count_memories("t1", "bob") == 0
    assert await store.count_memories("t2", "alice") == 1
    await store.delete()
    assert await store.count_memories("t2", "alice") == 0
    assert await store.list_memories("t2", "alice") == []


# -- summaries ----------------------------------------------------------------------------


def summary(version: int, to_seq: int, text: str = "", **fields: Any) -> SessionSummary:
    return SessionSummary(
        version, text or f"summary {version}", 1, to_seq, 1000.0 + version, **fields
    )


async def test_summaries_are_appended_and_the_newest_is_loaded(store: SessionStore) -> None:
    revision = await session_at(store)
    assert (await store.load(KEY, window=5)).session.summary is None  # type: ignore[union-attr]
    second = WriteBatch(
        KEY, 1001.0, 1, (), base_revision=revision, summary=summary(1, 1, model="m")
    )
    await store.write(second)
    failed = summary(2, 1, "summary 1", error="model unavailable")
    await store.write(
        WriteBatch(KEY, 1002.0, 1, (), base_revision=second.new_revision(), summary=failed)
    )
    snapshot = await store.load(KEY, window=5)
    assert snapshot is not None and snapshot.session.summary == failed
    assert [s.version for s in await store.summaries(KEY)] == [1, 2]
    assert (await store.summaries(KEY))[0] == summary(1, 1, model="m")
    assert await store.summaries(SessionKey("t1", "bob", "s1")) == []
    listed = await store.sessions(tenant_id="t1", user_id="alice")
    assert listed[0].summary is None  # listings do not read summaries


async def test_a_summary_rides_on_the_sessions_revision_check(store: SessionStore) -> None:
    revision = await session_at(store)
    moved = WriteBatch(KEY, 1001.0, 1, (), base_revision=revision, state={"x": 1})
    await store.write(moved)
    stale = WriteBatch(KEY, 1002.0, 1, (), base_revision=revision, summary=summary(1, 1))
    with pytest.raises(Conflict):
        await store.write(stale)
    assert await store.summaries(KEY) == []
    fresh = WriteBatch(
        KEY, 1003.0, 1, (), base_revision=moved.new_revision(), summary=summary(1, 1)
    )
    await store.write(fresh)
    again = WriteBatch(
        KEY,
        1004.0,
        1,
        [Message("user", "lost?", seq=2, created_at=1004.0)],
        base_revision=fresh.new_revision(),
        summary=summary(1, 1, "a duplicate version"),
    )
    with pytest.raises(Conflict):
        await store.write(again)
    assert [s.text for s in await store.summaries(KEY)] == ["summary 1"]


async def test_deleting_a_session_takes_its_summaries(store: SessionStore) -> None:
    revision = await session_at(store)
    other = SessionKey("t1", "alice", "s2")
    other_revision = await session_at(store, other)
    await store.write(WriteBatch(KEY, 1001.0, 1, (), base_revision=revision, summary=summary(1, 1)))
    await store.write(
        WriteBatch(other, 1001.0, 1, (), base_revision=other_revision, summary=summary(1, 1))
    )
    await store.delete(tenant_id="t1", user_id="alice", session_id="s1")
    assert await store.summaries(KEY) == []
    await session_at(store)  # the same key, anew: no summary carried over
    snapshot = await store.load(KEY, window=5)
    assert snapshot is not None and snapshot.session.summary is None
    assert len(await store.summaries(other)) == 1
    assert await store.delete_idle(before=5000.0, limit=10) == 2
    assert await store.summaries(other) == []


async def test_memories_and_summaries_survive_close_and_reopen(
    store_factory: Callable[[], SessionStore],
) -> None:
    first = store_factory()
    await first.open()
    revision = await session_at(first)
    await first.write(WriteBatch(KEY, 1001.0, 1, (), base_revision=revision, summary=summary(1, 1)))
    await first.add_memory(memory("mem_1", "remembered across restarts", embedding=[1.0, 2.0]))
    await first.close()

    second = store_factory()
    await second.open()
    try:
        snapshot = await second.load(KEY, window=5)
        assert snapshot is not None and snapshot.session.summary == summary(1, 1)
        (record,) = await second.list_memories("t1", "alice", embeddings=True)
        assert (record.text, record.embedding) == ("remembered across restarts", [1.0, 2.0])
        assert await found(second, "restarts") == ["mem_1"]
    finally:
        await second.close()


# Only the tests go into agenthost.testing (helper names such as KEY are its own there).
__all__ = [name for name in list(globals()) if name.startswith("test_")]
