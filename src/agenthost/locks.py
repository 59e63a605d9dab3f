"""Per-key ordering of turns: in this process, and across processes.

:class:`KeyedLocks` keeps one small entry per key that a turn holds or waits
for, and drops it when the last one leaves, so the table never outgrows the
number of sessions in flight. A :class:`Coordinator` adds ordering across
processes (PostgreSQL advisory locks, Redis locks) on top of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from agenthost.errors import SessionBusy
from agenthost.keys import SessionKey


class _Entry:
    __slots__ = ("holders", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holders = 0


class KeyedLocks:
    """FIFO mutual exclusion per key. ``wait=False`` raises ``SessionBusy`` instead of queueing."""

    def __init__(self) -> None:
        self._entries: dict[SessionKey, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def busy(self, key: SessionKey) -> bool:
        return key in self._entries

    @asynccontextmanager
    async def hold(self, key: SessionKey, *, wait: bool = True) -> AsyncIterator[None]:
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry()
        elif not wait:
            raise SessionBusy(f"session {key.session_id!r} is busy with another turn")
        entry.holders += 1
        try:
            await entry.lock.acquire()
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.holders -= 1
            if entry.holders == 0:
                del entries[key]


class Coordinator(Protocol):
    """Cross-process ordering. ``shared`` says other processes write the same store."""

    @property
    def shared(self) -> bool: ...

    def hold(self, key: SessionKey, *, wait: bool) -> AbstractAsyncContextManager[None]: ...

    async def close(self) -> None: ...


class LocalCoordinator:
    """One process owns its store: the in-process lock is all the ordering needed."""

    shared = False

    @asynccontextmanager
    async def hold(self, key: SessionKey, *, wait: bool) -> AsyncIterator[None]:
        yield

    async def close(self) -> None:
        return None
