"""Per-key ordering of turns: in this process, and across processes.

:class:`KeyedLocks` keeps one small entry per key that a turn holds or waits
for, and drops it when the last one leaves, so the table never outgrows the
number of sessions in flight. A :class:`Coordinator` adds ordering across
processes (PostgreSQL advisory locks, Redis locks) on top of it.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from agenthost.errors import SessionBusy
from agenthost.keys import SessionKey

if TYPE_CHECKING:
    from agenthost.stores.base import Lease, SessionStore


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

    def hold(self, key: SessionKey, *, wait: bool = True) -> _Hold:
        """``async with locks.hold(key):`` runs the block alone among holders of ``key``."""
        return _Hold(self._entries, key, wait)


class _Hold:
    """One holder of a key (a class, not a generator: it is on every turn's path)."""

    __slots__ = ("entries", "entry", "key", "wait")

    def __init__(self, entries: dict[SessionKey, _Entry], key: SessionKey, wait: bool) -> None:
        self.entries = entries
        self.key = key
        self.wait = wait

    async def __aenter__(self) -> None:
        entries = self.entries
        key = self.key
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry()
        elif not self.wait:
            raise SessionBusy(f"session {key.session_id!r} is busy with another turn")
        entry.holders += 1
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave(entry)
            raise
        self.entry = entry

    async def __aexit__(self, *exc: object) -> None:
        entry = self.entry
        entry.lock.release()
        self._leave(entry)

    def _leave(self, entry: _Entry) -> None:
        entry.holders -= 1
        if entry.holders == 0:
            del self.entries[self.key]


class LeaseFolding(Protocol):
    """A coordinator whose leases ride on the session's own writes (see
    :class:`~agenthost.stores.base.Lease`): its ``hold`` takes nothing by itself; the
    first write of the hold takes the lease, the last gives it back."""

    def lease(self, key: SessionKey) -> Lease | None:
        """The lease of this process's hold on ``key`` (None outside a hold)."""

    async def acquire(self, lease: Lease) -> None:
        """Take ``lease`` now by itself, waiting as its hold asked (``SessionBusy`` when
        not waiting, or after the wait timeout); a no-op if it is held."""


class Coordinator(Protocol):
    """Cross-process ordering. ``shared`` says other processes write the same store."""

    @property
    def shared(self) -> bool: ...

    def hold(self, key: SessionKey, *, wait: bool) -> AbstractAsyncContextManager[None]: ...

    def fold(self, store: SessionStore) -> LeaseFolding | None:
        """Fold the locks into ``store``'s writes if it keeps them (None: it does not)."""

    async def close(self) -> None: ...


class _Nothing:
    """An async context manager that does nothing, shared by every caller."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()


class LocalCoordinator:
    """One process owns its store: the in-process lock is all the ordering needed."""

    shared = False

    def hold(self, key: SessionKey, *, wait: bool) -> AbstractAsyncContextManager[None]:
        return _NOTHING

    def fold(self, store: SessionStore) -> LeaseFolding | None:
        return None

    async def close(self) -> None:
        return None
