"""The run-log protocol (run logs, idempotency keys, cancel requests) on every backend.

Same ``store_factory`` fixture (this directory's conftest) and ``store`` fixture
(:mod:`agenthost.testing`) as the session-store suite: each test runs on memory,
SQLite (both durability levels), PostgreSQL and Redis. Where it matters, several
store objects over the same data stand in for several processes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from agenthost.keys import SessionKey
from agenthost.stores import SessionStore
from agenthost.stores.runlog import IdempotencyRecord, RunLogStore
from agenthost.testing import StoreFactory, store

__all__ = ["store"]  # the fixture, for these tests

ALICE = SessionKey("acme", "alice", "s1")
HOUR = 3600.0


def runlog(store: SessionStore) -> RunLogStore:
    assert isinstance(store, RunLogStore)
    return cast(RunLogStore, store)


def claim(
    run_id: str,
    *,
    key: str = "k1",
    fingerprint: str = "f1",
    now: float = 1000.0,
    ttl: float = 60.0,
    who: SessionKey = ALICE,
) -> IdempotencyRecord:
    return IdempotencyRecord(
        who.tenant_id, who.user_id, key, fingerprint, run_id, who.session_id, now, now + ttl
    )


def delta(text: str) -> dict[str, Any]:
    return {"type": "delta", "text": text}


async def test_a_run_log_keeps_its_events_in_order_and_refuses_gaps_and_repeats(
    store: SessionStore,
) -> None:
    log = runlog(store)
    assert await log.read_run_log("run_a") is None
    assert not await log.append_run_events("run_a", [(1, delta("x"))], now=1000.0, retention=HOUR)

    assert await log.open_run_log("run_a", ALICE, now=1000.0, retention=HOUR) is None
    opened = await log.read_run_log("run_a")
    assert opened is not None
    assert (opened.header.key, opened.header.last_seq, opened.events) == (ALICE, 0, [])

    first = [(1, delta("Hel")), (2, {"type": "tool_call", "id": "c1", "name": "t", "n": [1, 2]})]
    assert await log.append_run_events("run_a", first, now=1001.0, retention=HOUR)
    assert not await log.append_run_events("run_a", [(2, delta("dup"))], now=1002.0, retention=HOUR)
    assert not await log.append_run_events("run_a", [(4, delta("gap"))], now=1002.0, retention=HOUR)
    assert await log.append_run_events("run_a", [(3, delta("lo"))], now=1003.0, retention=HOUR)

    whole = await log.read_run_log("run_a")
    assert whole is not None
    assert whole.events == [*first, (3, delta("lo"))]
    assert whole.header.last_seq == 3
    assert whole.header.updated_at == 1003.0
    after = await log.read_run_log("run_a", after_seq=1, limit=1)
    assert after is not None and after.events == [first[1]]

    # opening again (a later phase of the run) keeps what is there
    assert await log.open_run_log("run_a", ALICE, now=1004.0, retention=HOUR) is None
    again = await log.read_run_log("run_a")
    assert again is not None and again.header.last_seq == 3 and len(again.events) == 3


async def test_unicode_and_nested_payloads_round_trip(store: SessionStore) -> None:
    log = runlog(store)
    await log.open_run_log("run_u", ALICE, now=1000.0, retention=HOUR)
    payload = {"type": "done", "reply": "名前は Alice です \u2028 \x00", "usage": {"a": [1, None]}}
    assert await log.append_run_events("run_u", [(1, payload)], now=1000.0, retention=HOUR)
    read = await log.read_run_log("run_u")
    assert read is not None and read.events == [(1, payload)]


async def test_one_claim_of_a_key_wins_and_the_others_see_its_record(
    store_factory: StoreFactory, store: SessionStore
) -> None:
    others = [store_factory() for _ in range(3)]  # other processes, over the same data
    for other in others:
        await other.open()
    try:
        stores = [store, *others]
        attempts = [
            runlog(stores[i % len(stores)]).open_run_log(
                f"run_{i}",
                ALICE,
                now=1000.0,
                retention=HOUR,
                claim=claim(f"run_{i}", fingerprint=f"f{i}"),
            )
            for i in range(24)
        ]
        outcomes = await asyncio.gather(*attempts)
    finally:
        for other in others:
            if other is not store:
                await other.close()
    winners = [i for i, held in enumerate(outcomes) if held is None]
    assert len(winners) == 1
    (winner,) = winners
    for held in outcomes:
        if held is not None:
            assert (held.run_id, held.fingerprint, held.result) == (
                f"run_{winner}",
                f"f{winner}",
                None,
            )
            assert (held.tenant_id, held.user_id, held.key, held.session_id) == (
                "acme",
                "alice",
                "k1",
                "s1",
            )
    log = runlog(store)
    assert await log.read_run_log(f"run_{winner}") is not None
    losers = [i for i in range(24) if i != winner]
    assert all([await log.read_run_log(f"run_{i}") is None for i in losers])


async def test_keys_are_scoped_to_the_tenant_and_user(store: SessionStore) -> None:
    log = runlog(store)
    bob = SessionKey("acme", "bob", "s1")
    other_tenant = SessionKey("globex", "alice", "s1")
    assert (
        await log.open_run_log("run_1", ALICE, now=1000.0, retention=HOUR, claim=claim("run_1"))
        is None
    )
    assert (
        await log.open_run_log(
            "run_2", bob, now=1000.0, retention=HOUR, claim=claim("run_2", who=bob)
        )
        is None
    )
    assert (
        await log.open_run_log(
            "run_3",
            other_tenant,
            now=1000.0,
            retention=HOUR,
            claim=claim("run_3", who=other_tenant),
        )
        is None
    )


async def test_an_expired_key_can_be_claimed_again(store: SessionStore) -> None:
    log = runlog(store)
    assert (
        await log.open_run_log("run_1", ALICE, now=1000.0, retention=HOUR, claim=claim("run_1"))
        is None
    )
    held = await log.open_run_log(
        "run_2", ALICE, now=1059.0, retention=HOUR, claim=claim("run_2", now=1059.0)
    )
    assert held is not None and held.run_id == "run_1"
    assert (
        await log.open_run_log(
            "run_3",
            ALICE,
            now=1061.0,
            retention=HOUR,
            claim=claim("run_3", fingerprint="f3", now=1061.0),
        )
        is None
    )
    now_held = await log.open_run_log(
        "run_4", ALICE, now=1062.0, retention=HOUR, claim=claim("run_4", now=1062.0)
    )
    assert now_held is not None and (now_held.run_id, now_held.fingerprint) == ("run_3", "f3")


async def test_finish_and_release_touch_only_the_record_of_their_run(store: SessionStore) -> None:
    log = runlog(store)
    await log.open_run_log("run_1", ALICE, now=1000.0, retention=HOUR, claim=claim("run_1"))
    result = {"type": "done", "reply": "hi", "run_id": "run_1"}
    await log.finish_idempotency("acme", "alice", "k1", run_id="run_other", result={"x": 1})
    await log.release_idempotency("acme", "alice", "k1", run_id="run_other")
    held = await log.open_run_log("run_2", ALICE, now=1001.0, retention=HOUR, claim=claim("run_2"))
    assert held is not None and held.run_id == "run_1" and held.result is None

    await log.finish_idempotency("acme", "alice", "k1", run_id="run_1", result=result)
    held = await log.open_run_log("run_2", ALICE, now=1002.0, retention=HOUR, claim=claim("run_2"))
    assert held is not None and held.result == result

    await log.release_idempotency("acme", "alice", "k1", run_id="run_1")
    assert (
        await log.open_run_log("run_2", ALICE, now=1003.0, retention=HOUR, claim=claim("run_2"))
        is None
    )


async def test_finishing_a_released_or_erased_key_does_not_bring_it_back(
    store: SessionStore,
) -> None:
    log = runlog(store)
    await log.open_run_log("run_1", ALICE, now=1000.0, retention=HOUR, claim=claim("run_1"))
    await store.delete(tenant_id="acme", user_id="alice")
    await log.finish_idempotency("acme", "alice", "k1", run_id="run_1", result={"reply": "secret"})
    assert (
        await log.open_run_log("run_2", ALICE, now=1001.0, retention=HOUR, claim=claim("run_2"))
        is None
    )


async def test_cancel_requests_are_seen_by_every_store_over_the_data(
    store_factory: StoreFactory, store: SessionStore
) -> None:
    other = store_factory()
    await other.open()
    try:
        assert await runlog(store).cancel_requests(["run_1", "run_2"]) == set()
        await runlog(other).request_cancel("run_2", now=time.time())
        await runlog(other).request_cancel("run_2", now=time.time())
        assert await runlog(store).cancel_requests(["run_1", "run_2", "run_3"]) == {"run_2"}
        assert await runlog(store).cancel_requests([]) == set()
    finally:
        if other is not store:
            await other.close()


async def test_erasing_a_user_or_session_erases_their_logs_and_keys_and_fences_appends(
    store: SessionStore,
) -> None:
    log = runlog(store)
    s2 = SessionKey("acme", "alice", "s2")
    bob = SessionKey("acme", "bob", "s1")
    for run_id, key, idem in (("run_a1", ALICE, "ka"), ("run_a2", s2, "kb"), ("run_b", bob, "kc")):
        record = claim(run_id, key=idem, who=key)
        assert await log.open_run_log(run_id, key, now=1000.0, retention=HOUR, claim=record) is None
        assert await log.append_run_events(run_id, [(1, delta(run_id))], now=1000.0, retention=HOUR)

    await store.delete(tenant_id="acme", user_id="alice", session_id="s1")
    assert await log.read_run_log("run_a1") is None
    assert await log.read_run_log("run_a2") is not None
    assert not await log.append_run_events(
        "run_a1", [(2, delta("late"))], now=1001.0, retention=HOUR
    )
    fresh = await log.open_run_log(
        "run_x", ALICE, now=1001.0, retention=HOUR, claim=claim("run_x", key="ka")
    )
    assert fresh is None  # the erased session's key is free again

    await store.delete(tenant_id="acme", user_id="alice")
    assert await log.read_run_log("run_a2") is None
    assert await log.read_run_log("run_x") is None
    held = await log.open_run_log(
        "run_y", s2, now=1002.0, retention=HOUR, claim=claim("run_y", key="kb", who=s2)
    )
    assert held is None

    bob_log = await log.read_run_log("run_b")  # another user's data stays
    assert bob_log is not None and bob_log.events == [(1, delta("run_b"))]
    held = await log.open_run_log(
        "run_z", bob, now=1002.0, retention=HOUR, claim=claim("run_z", key="kc", who=bob)
    )
    assert held is not None and held.run_id == "run_b"

    await store.delete(tenant_id="acme")
    assert await log.read_run_log("run_b") is None


async def test_logs_and_keys_expire(store_factory: StoreFactory, store: SessionStore) -> None:
    log = runlog(store)
    now = time.time()
    await log.open_run_log(
        "run_old", ALICE, now=now, retention=0.2, claim=claim("run_old", now=now, ttl=0.2)
    )
    await log.open_run_log("run_new", ALICE, now=now, retention=HOUR)
    await log.append_run_events("run_new", [(1, delta("kept"))], now=now, retention=HOUR)
    later = now + 5.0
    purged = await log.purge_runs(now=later)
    if type(store).__name__ != "RedisStore":  # Redis expires keys by itself
        assert purged == 1
    deadline = time.monotonic() + 10.0
    while await log.read_run_log("run_old") is not None:  # Redis expires keys by itself
        assert time.monotonic() < deadline, "an expired run log was never deleted"
        await asyncio.sleep(0.05)
    kept = await log.read_run_log("run_new")
    assert kept is not None and kept.events == [(1, delta("kept"))]
    held = await log.open_run_log(
        "run_again", ALICE, now=later, retention=HOUR, claim=claim("run_again", now=later)
    )
    assert held is None
