"""The session runtime: the one writer of every session's log, state and config.

Every write to a session, from any face (turns, state and config patches,
approvals, crash recovery, erasure), goes through :class:`Sessions`, so the
coherence rule lives here and nowhere else:

- A live session is a cached copy at a ``revision``. Each write is a
  compare-and-set on that revision at the store (:class:`WriteBatch`'s
  ``base_revision``); the store refuses a stale writer with ``Conflict`` and
  writes nothing. The copy is then dropped and reloaded; a patch is re-applied
  to what the store holds, a turn that has not stored anything yet starts over
  on the fresh copy. Nothing is ever overwritten on the strength of a cache.
- So a turn on a live session costs no extra round trip: the check rides on
  the writes it makes anyway. A copy proven wrong costs one reload.
- Erasure deletes at the store and needs no lock: a turn still running on an
  erased session, or a process that cached it, writes against a revision that
  no longer exists and is refused (:class:`~agenthost.errors.SessionErased`).
  Revisions are random, so a session created anew under the same key never
  matches a stale copy of the old one.
- A write that failed (store down, outcome unknown) marks the copy stale; the
  next use reloads it and closes the run it left open (:meth:`Sessions.load`).
  Runs are only closed as ``interrupted`` by a holder of the session's lock,
  which no live turn of another process holds; a turn whose lease was lost
  (the lock service restarted empty) cannot commit past the revision check.
- With a coordinator folded into the store (PostgreSQL), the cross-process lease
  rides on these writes: the first write of a hold takes it (refused, writing
  nothing, while another process has it: the writer waits for it, and its copy
  is stale), the write that finishes a run gives it back. Whatever decides on
  what the store holds (a reload, open runs found by a load) takes it first.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from agenthost.errors import Conflict, NotFound, SessionBusy, SessionErased
from agenthost.keys import SessionKey
from agenthost.live import LiveSession, LiveSessionCache
from agenthost.locks import Coordinator, KeyedLocks
from agenthost.messages import Message, closing_messages, open_calls_in
from agenthost.stores.base import (
    LoadsAfter,
    PendingApproval,
    RunRecord,
    SessionRecord,
    SessionStore,
    SessionSummary,
    Snapshot,
    WriteBatch,
    new_revision,
)

RECOVERED = "the process running it stopped"
UPDATE_ATTEMPTS = 5

Change = tuple[dict[str, Any] | None, dict[str, Any] | None]
"""A session's new state and config (``None``: unchanged), computed from its live copy."""


class Sessions:
    """Holds keys, keeps live sessions, and applies every write with its revision check."""

    def __init__(
        self,
        store: SessionStore,
        *,
        window: int,
        cache: LiveSessionCache,
        coordinator: Coordinator,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.window = window
        self.cache = cache
        self.coordinator = coordinator
        self.clock = clock
        self.locks = KeyedLocks()
        self.conflicts = 0  # stale copies found at write time (another writer got there)
        self.delta_loads = 0  # stale copies brought up to date by the messages they lacked
        self.folding = coordinator.fold(store)  # leases taken by our writes (or None)

    @classmethod
    def scratch(cls, store: SessionStore, window: int, clock: Callable[[], float]) -> Sessions:
        """A runtime of one throwaway session (stateless turns): in-process locks only."""
        from agenthost.locks import LocalCoordinator

        cache = LiveSessionCache(max_live=1, ttl=None)
        return cls(
            store, window=max(1, window), cache=cache, coordinator=LocalCoordinator(), clock=clock
        )

    @property
    def shared(self) -> bool:
        """Whether other processes write the same store (so a copy may go stale)."""
        return self.coordinator.shared

    @contextlib.asynccontextmanager
    async def locked(self, key: SessionKey, *, wait: bool) -> AsyncIterator[None]:
        """Run the block alone among this key's turns, here and in other processes."""
        async with self.locks.hold(key, wait=wait), self.coordinator.hold(key, wait=wait):
            yield

    # -- reading a session into memory (the caller holds the key) -------------------

    async def live(self, key: SessionKey, *, create: bool) -> LiveSession | None:
        """The live session (cached, or loaded and recovered); busy until :meth:`release`."""
        live = self.cache.get(key, self.clock())
        if live is None:
            live = await self.load(key, create=create)
            if live is None:
                return None
        self.cache.hold(live)
        return live

    async def _take_lease(self, key: SessionKey) -> bool:
        """Take the hold's lease on ``key`` now if writes would otherwise take it later
        (folded coordination); whether it was not held before."""
        folding = self.folding
        lease = None if folding is None else folding.lease(key)
        if lease is None or lease.held:
            return False
        assert folding is not None
        await folding.acquire(lease)
        return True

    async def reload(self, live: LiveSession, *, create: bool = True) -> LiveSession | None:
        """Drop ``live`` and read the session afresh from the store (busy, like ``live``):
        under the session's lease, since what is read now decides what happens next; from
        a store that can (:class:`LoadsAfter`), only the messages ``live`` lacks."""
        self.cache.unhold(live)
        self.cache.discard(live.key)
        await self._take_lease(live.key)
        fresh = await self.load(live.key, create=create, stale=live)
        if fresh is not None:
            self.cache.hold(fresh)
        return fresh

    async def load(
        self, key: SessionKey, *, create: bool, stale: LiveSession | None = None
    ) -> LiveSession | None:
        """Read the session's row and window; close runs a dead turn left open; cache it.
        ``stale``: an older copy of it, whose messages need not be read again."""
        now = self.clock()
        snapshot = await self._snapshot(key, stale)
        if snapshot is not None and snapshot.running and await self._take_lease(key):
            # a run is open: its turn may be alive elsewhere; read again under the lease
            snapshot = await self.store.load(key, window=self.window)
        if snapshot is None:
            if not create:
                return None
            live = LiveSession(key, deque(maxlen=self.window), 0, 0, {}, {}, [], now, now)
        else:
            live = self._from_snapshot(snapshot, now)
            if snapshot.running:
                live.busy = True
                try:
                    await self._recover(live, snapshot.running)
                finally:
                    live.busy = False
        self.cache.put(live)
        return live

    async def _snapshot(self, key: SessionKey, stale: LiveSession | None) -> Snapshot | None:
        store = self.store
        if stale is None or not stale.revision or not isinstance(store, LoadsAfter):
            return await store.load(key, window=self.window)
        snapshot = await store.load_after(key, window=self.window, after_seq=stale.last_seq)
        if snapshot is None:
            return None
        window = _caught_up(stale, snapshot, self.window)
        if window is None:  # not the same session, or not a plain continuation of it
            return await store.load(key, window=self.window)
        self.delta_loads += 1
        return Snapshot(snapshot.session, window, snapshot.running)

    def _from_snapshot(self, snapshot: Snapshot, now: float) -> LiveSession:
        record = snapshot.session
        return LiveSession(
            record.key,
            deque(snapshot.window, maxlen=self.window),
            record.last_seq,
            record.message_count,
            record.state,
            record.config,
            record.pending,
            record.created_at,
            now,
            record.revision,
            summary=record.summary,
        )

    async def _recover(self, live: LiveSession, running: list[str]) -> None:
        """Close runs that no turn is running any more: interrupted, with a closing message."""
        now = self.clock()
        for index, run_id in enumerate(running):
            run = RunRecord(run_id, live.key, "interrupted", now, now, RECOVERED)
            stored = await self.store.get_run(run_id)
            if stored is not None:
                run.started_at, run.usage, run.request_id = (
                    stored.started_at,
                    stored.usage,
                    stored.request_id,
                )
            messages: list[Message] = []
            if index == len(running) - 1:
                tail = live.window[-1] if live.window else None
                if tail is not None and (tail.role != "assistant" or tail.tool_calls):
                    calls = open_calls_in(live.window)
                    messages = closing_messages(
                        calls, tail.run_id or run_id, "interrupted", RECOVERED, ""
                    )
            await self.commit(live, messages, run=run, last=False)  # the turn comes next

    def release(self, live: LiveSession) -> None:
        """A turn is done with ``live``: it may be evicted again (or is dropped if stale)."""
        live.last_used = self.clock()
        self.cache.unhold(live)
        if live.stale:
            if self.cache.get(live.key, live.last_used) is live:
                self.cache.discard(live.key)
        else:
            self.cache.trim()

    def invalidate(self, key: SessionKey) -> None:
        self.cache.discard(key)

    # -- the one write --------------------------------------------------------------

    async def commit(
        self,
        live: LiveSession,
        messages: Sequence[Message] = (),
        *,
        run: RunRecord | None = None,
        state: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        pending: list[PendingApproval] | None = None,
        summary: SessionSummary | None = None,
        last: bool | None = None,
    ) -> None:
        """Store a write on ``live`` (checked against its revision), then apply it to ``live``.

        Raises ``Conflict`` if the store moved on (``SessionErased`` if the session is
        gone); any failure marks ``live`` stale so that its next use reloads it.
        ``last``: the hold's last write, which gives a folded lease back (by default,
        a write that finishes its run).
        """
        now = self.clock()
        seq = base = live.last_seq
        for message in messages:
            seq += 1
            message.seq = seq
            message.created_at = now
        revision = new_revision()
        batch = WriteBatch(
            live.key,
            now,
            base,
            messages,
            run,
            state,
            config,
            pending,
            base_revision=live.revision,
            revision=revision,
            summary=summary,
        )
        folding = self.folding
        if folding is not None and (lease := folding.lease(live.key)) is not None:
            batch.lease = lease
            batch.release = (run is not None and run.status != "running") if last is None else last
        try:
            await self.store.write(batch)
        except SessionBusy:  # the lease: another process has the session, nothing written
            live.stale = True
            self.conflicts += 1
            assert folding is not None and batch.lease is not None
            await folding.acquire(batch.lease)  # wait for it (or SessionBusy, as asked)
            raise Conflict(f"session {live.key.session_id!r} was in use elsewhere") from None
        except SessionErased:
            live.stale = True
            raise
        except Conflict as exc:
            live.stale = True
            self.conflicts += 1
            if live.revision and exc.exists is None and await self._gone(live.key):
                raise SessionErased(
                    f"session {live.key.session_id!r} was erased while it was in use"
                ) from None
            raise
        except BaseException:
            live.stale = True
            raise
        if not live.revision:  # the write made the session: the store's creation time
            live.created_at = now
        live.revision = revision
        if messages:
            live.window.extend(messages)
            live.last_seq = seq
            live.message_count += len(messages)
        if state is not None:
            live.state = state
        if config is not None:
            live.config = config
        if pending is not None:
            live.pending = pending
        if summary is not None:
            live.summary = summary

    async def _gone(self, key: SessionKey) -> bool:
        try:
            return await self.store.revision(key) == 0
        except Exception:
            return False  # cannot tell: report the plain conflict

    async def update(
        self, key: SessionKey, change: Callable[[LiveSession], Change], *, create: bool
    ) -> SessionRecord:
        """Write ``change(live)`` under the key's lock, recomputed on what the store holds
        whenever it moved under us (a stale copy, another process's write)."""
        async with self.locked(key, wait=True):
            live = await self.live(key, create=create)
            if live is not None and self.shared:
                live = await self.reload(live, create=create)
            try:
                for attempt in range(1, UPDATE_ATTEMPTS + 1):
                    if live is None:
                        raise NotFound(f"session {key.session_id!r} not found")
                    state, config = change(live)
                    try:
                        await self.commit(live, state=state, config=config, last=True)
                        break
                    except Conflict:
                        if attempt == UPDATE_ATTEMPTS:
                            raise
                        live = await self.reload(live, create=create)
                assert live is not None
                return SessionRecord(
                    key,
                    live.created_at,
                    self.clock(),
                    live.last_seq,
                    live.message_count,
                    live.state,
                    live.config,
                    live.pending,
                    live.revision,
                )
            finally:
                if live is not None:
                    self.release(live)

    # -- erasure ----------------------------------------------------------------------

    async def erase(
        self, *, tenant_id: str | None, user_id: str | None, session_id: str | None = None
    ) -> int:
        """Delete sessions at the store now; their cached copies go, running turns are fenced."""
        if session_id is not None:
            assert tenant_id is not None and user_id is not None
            self.cache.discard(SessionKey(tenant_id, user_id, session_id))
        else:
            self.cache.discard_where(tenant_id, user_id)
        deleted = await self.store.delete(
            tenant_id=tenant_id, user_id=user_id, session_id=session_id
        )
        # a copy cached again by a turn that read the session just before the delete
        if session_id is not None:
            assert tenant_id is not None and user_id is not None
            self._drop_idle(SessionKey(tenant_id, user_id, session_id))
        else:
            for live in self.cache:
                if (tenant_id is None or live.key.tenant_id == tenant_id) and (
                    user_id is None or live.key.user_id == user_id
                ):
                    self._drop_idle(live.key)
        return deleted

    def _drop_idle(self, key: SessionKey) -> None:
        live = self.cache.get(key, self.clock())
        if live is None:
            return
        if live.busy:
            live.stale = True  # its turn is fenced at the store; drop the copy when it ends
        else:
            self.cache.discard(key)


def _caught_up(stale: LiveSession, newer: Snapshot, size: int) -> list[Message] | None:
    """The window of the session ``newer`` shows (its row and the messages after
    ``stale.last_seq``), made from ``stale``'s window and those messages; ``None`` unless
    that is certain: the same session (created at the same time), ``stale``'s window its
    contiguous tail up to ``stale.last_seq``, and the new messages exactly the seqs after
    it up to the row's ``last_seq`` (all of them, or a whole window's worth)."""
    record = newer.session
    if record.created_at != stale.created_at or record.last_seq < stale.last_seq:
        return None
    held = [m.seq for m in stale.window]
    if held != list(range(stale.last_seq - len(held) + 1, stale.last_seq + 1)):
        return None
    if len(held) < min(size, stale.last_seq):  # the copy's window is not a whole one
        return None
    wanted = list(range(stale.last_seq + 1, record.last_seq + 1))[-size:]
    if [m.seq for m in newer.window] != wanted:
        return None
    return (list(stale.window) + newer.window)[-size:]
