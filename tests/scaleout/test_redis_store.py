"""RedisStore beyond the conformance suite: atomic seqs across clients, retention, failures."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from agenthost.errors import Conflict, StoreUnavailable
from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores import WriteBatch, open_store
from agenthost.stores.redis import RedisStore, parse_url
from support.services import unique

KEY = SessionKey("t", "u", "s")


def batch(base: int, text: str, *, count: int = 1, now: float = 1.0) -> WriteBatch:
    messages = [Message("user", f"{text}{i}", seq=base + i) for i in range(1, count + 1)]
    return WriteBatch(KEY, now, base, messages)


async def test_two_clients_never_write_the_same_seq(redis_store_url: str) -> None:
    stores = [RedisStore(redis_store_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for base in range(0, 40, 2):  # twenty rounds; in each, four writers race for 2 seqs
            results = await asyncio.gather(
                *(s.write(batch(base, f"w{i}-", count=2)) for i, s in enumerate(stores)),
                return_exceptions=True,
            )
            assert sum(r is None for r in results) == 1
            assert all(isinstance(r, Conflict) for r in results if r is not None)
        stored = await stores[0].messages(KEY)
        assert [m.seq for m in stored] == list(range(1, 41))
        for first, second in zip(stored[::2], stored[1::2], strict=True):
            assert first.content.split("-")[0] == second.content.split("-")[0]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_retried_write_is_recognised_not_refused(redis_store_url: str) -> None:
    """A write whose reply was lost is sent again by the client: the script accepts it once."""
    store = RedisStore(redis_store_url)
    await store.open()
    try:
        first = batch(0, "a", count=2)
        await store.write(first)
        await store.write(first)  # the same bytes again: already applied
        assert [m.seq for m in await store.messages(KEY)] == [1, 2]
        with pytest.raises(Conflict):
            await store.write(batch(0, "other", count=2))
    finally:
        await store.close()


async def test_retention_expires_every_key_of_a_session(redis_store_url: str) -> None:
    store = open_store(redis_store_url + "&retention=3600")
    assert isinstance(store, RedisStore)
    assert store.retention == 3600
    await store.open()
    client = aioredis.Redis.from_url(parse_url(redis_store_url)[0])
    try:
        now = time.time()
        from agenthost.stores.base import RunRecord

        run = RunRecord("run_r", KEY, "running", now)
        await store.write(WriteBatch(KEY, now, 0, [Message("user", "hi", seq=1)], run))
        names = [n async for n in client.scan_iter(match=f"{store.prefix}:*")]
        session_keys = [n for n in names if b":idx" not in n]
        assert len(session_keys) == 5  # hash, list, runs, running set, run record
        for name in session_keys:
            ttl = await client.pttl(name)
            assert 0 < ttl <= 3600 * 1000, name
        # the index forgets sessions older than the retention even before Redis expires them
        old = SessionKey("t", "u", "old")
        await store.write(WriteBatch(old, now - 7200, 0, [Message("user", "x", seq=1)]))
        assert [r.key for r in await store.sessions(tenant_id="t")] == [KEY]
        assert await store.count_sessions() == 1
    finally:
        await client.aclose()
        await store.close()


async def test_an_unreachable_server_is_store_unavailable() -> None:
    store = RedisStore("redis://:pw@127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable, match="Redis at") as info:
        await store.open()
    assert "pw" not in info.value.message
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.ping()


async def test_a_dropped_connection_is_replaced(redis_store_url: str) -> None:
    name = unique("victim")
    store = RedisStore(f"{redis_store_url}&client_name={name}")
    await store.open()
    admin = aioredis.Redis.from_url(parse_url(redis_store_url)[0])
    try:
        await store.write(batch(0, "a"))
        mine = [c for c in await admin.client_list() if c.get("name") == name]
        assert mine
        for connection in mine:
            await admin.client_kill_filter(_id=connection["id"])
        await store.write(batch(1, "b"))
        assert await store.last_seq(KEY) == 2
    finally:
        await admin.aclose()
        await store.close()


def test_url_options() -> None:
    url, options = parse_url("redis://h:6379/2?prefix=p1&retention=60&socket_keepalive=true")
    assert url == "redis://h:6379/2?socket_keepalive=true"
    assert options == {"prefix": "p1", "retention": "60"}
