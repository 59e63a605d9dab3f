"""``LoadsAfter``: a session's row with only the messages after a seq, on every backend that
offers it (the session runtime then brings a stale copy up to date by what it lacks).
Redis does not offer it: its stale copies are read whole, as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agenthost.stores.base import LoadsAfter, SessionStore
from agenthost.testing import KEY, StoreFactory, append

CAPABLE = ["memory", "sqlite", "sqlite-full", "postgres"]


@pytest.fixture
async def opened(store_factory: StoreFactory) -> AsyncIterator[SessionStore]:
    store = store_factory()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("store_factory", CAPABLE, indirect=True)
async def test_load_after_reads_the_row_and_only_later_messages(opened: SessionStore) -> None:
    assert isinstance(opened, LoadsAfter)
    assert await opened.load_after(KEY, window=5, after_seq=0) is None  # no such session
    for _ in range(4):
        await append(opened, KEY, 3)  # seqs 1..12
    full = await opened.load(KEY, window=5)
    later = await opened.load_after(KEY, window=5, after_seq=9)
    assert full is not None and later is not None
    assert later.session == full.session and later.running == full.running
    assert [m.seq for m in later.window] == [10, 11, 12]
    assert later.window == full.window[-3:]
    behind = await opened.load_after(KEY, window=5, after_seq=2)  # more than a window after
    assert behind is not None and [m.seq for m in behind.window] == [8, 9, 10, 11, 12]
    current = await opened.load_after(KEY, window=5, after_seq=12)
    assert current is not None and current.window == [] and current.session.last_seq == 12


@pytest.mark.parametrize("store_factory", ["redis"], indirect=True)
async def test_redis_reads_stale_copies_whole(opened: SessionStore) -> None:
    assert not isinstance(opened, LoadsAfter)
