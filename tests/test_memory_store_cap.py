"""MemoryStore's ``max_messages`` cap: a MemoryStore-only behaviour, outside the shared suite."""

from __future__ import annotations

import pytest

from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores import MemoryStore, WriteBatch

KEY = SessionKey("t", "u", "s")


async def append(store: MemoryStore, count: int) -> None:
    base = await store.last_seq(KEY)
    messages = [Message("user", f"m{base + i}", seq=base + i) for i in range(1, count + 1)]
    await store.write(WriteBatch(KEY, 1.0, base, messages))


async def test_keeps_only_the_newest_messages_and_seqs_keep_counting() -> None:
    store = MemoryStore(max_messages=3)
    await append(store, 2)
    await append(store, 3)
    assert [m.seq for m in await store.messages(KEY)] == [3, 4, 5]
    snapshot = await store.load(KEY, window=10)
    assert snapshot is not None
    assert [m.content for m in snapshot.window] == ["m3", "m4", "m5"]
    assert snapshot.session.last_seq == 5
    assert snapshot.session.message_count == 3
    await append(store, 1)
    assert await store.last_seq(KEY) == 6
    assert [m.seq for m in await store.messages(KEY, after_seq=4)] == [5, 6]


async def test_none_keeps_everything_and_zero_is_refused() -> None:
    store = MemoryStore(max_messages=None)
    for _ in range(50):
        await append(store, 4)
    assert len(await store.messages(KEY)) == 200
    with pytest.raises(ValueError):
        MemoryStore(max_messages=0)
