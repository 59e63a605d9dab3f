"""The live-session cache: sessions held in memory, bounded by count and idle time."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores.base import PendingApproval, SessionSummary


@dataclass(slots=True, eq=False)
class LiveSession:
    """A session's window of history, state and config, as the store had them at ``revision``.

    A copy, not the truth: ``revision`` is what every write of it is checked
    against (``0``: not stored yet). ``stale`` marks a copy that a failed write
    left in doubt; it is dropped when its turn ends. ``summary`` is the session's
    newest summary (what fell out of the window), if it was ever compacted.
    """

    key: SessionKey
    window: deque[Message]
    last_seq: int
    message_count: int
    state: dict[str, Any]
    config: dict[str, Any]
    pending: list[PendingApproval]
    created_at: float
    last_used: float
    revision: int = 0
    busy: bool = False
    stale: bool = False
    summary: SessionSummary | None = None

    def info(self) -> dict[str, Any]:
        """What the admin listing shows of a live session."""
        key = self.key
        return {
            "tenant_id": key.tenant_id,
            "user_id": key.user_id,
            "session_id": key.session_id,
            "created_at": self.created_at,
            "last_used": self.last_used,
            "busy": self.busy,
            "messages_in_window": len(self.window),
        }

    def append(self, messages: list[Message]) -> None:
        self.window.extend(messages)
        self.last_seq = messages[-1].seq
        self.message_count += len(messages)


class LiveSessionCache:
    """LRU by last use, capped at ``max_live``; entries idle over ``ttl`` seconds expire.

    A busy session (turn in progress) is never evicted or expired. Busy sessions are
    kept apart from the LRU order (:meth:`hold` / :meth:`unhold`), so keeping within
    the cap never walks past them: with thousands of turns in flight, trimming costs
    what it evicts, not what is busy.
    """

    def __init__(self, *, max_live: int, ttl: float | None) -> None:
        if max_live < 1:
            raise ValueError("max_live_sessions must be at least 1")
        self.max_live = max_live
        self.ttl = ttl
        self.evictions = 0
        self.expirations = 0
        self._idle: OrderedDict[SessionKey, LiveSession] = OrderedDict()
        self._busy: dict[SessionKey, LiveSession] = {}

    def __len__(self) -> int:
        return len(self._idle) + len(self._busy)

    def __iter__(self) -> Iterator[LiveSession]:
        return iter([*self._idle.values(), *self._busy.values()])

    def get(self, key: SessionKey, now: float) -> LiveSession | None:
        session = self._busy.get(key)
        if session is not None:
            return session
        session = self._idle.get(key)
        if session is None:
            return None
        if self.ttl is not None and now - session.last_used > self.ttl:
            del self._idle[key]
            self.expirations += 1
            return None
        self._idle.move_to_end(key)
        return session

    def put(self, session: LiveSession) -> None:
        """Cache ``session`` (replacing any copy of its key) as the most recently used."""
        key = session.key
        self._busy.pop(key, None)
        if session.busy:
            self._idle.pop(key, None)
            self._busy[key] = session
        else:
            self._idle[key] = session
            self._idle.move_to_end(key)
        self.trim()

    def hold(self, session: LiveSession) -> None:
        """``session`` is in use by a turn: not evictable until :meth:`unhold`."""
        session.busy = True
        key = session.key
        if self._idle.get(key) is session:
            del self._idle[key]
            self._busy[key] = session
        elif key not in self._busy and key not in self._idle:
            self._busy[key] = session

    def unhold(self, session: LiveSession) -> None:
        """The turn is done with ``session``: it is the most recently used idle one."""
        session.busy = False
        key = session.key
        if self._busy.get(key) is session:
            del self._busy[key]
            self._idle[key] = session

    def trim(self) -> int:
        """Evict least recently used idle sessions until within the cap."""
        excess = len(self) - self.max_live
        if excess <= 0 or not self._idle:
            return 0
        evicted = 0
        while evicted < excess and self._idle:
            self._idle.popitem(last=False)
            evicted += 1
        self.evictions += evicted
        return evicted

    def sweep(self, now: float) -> int:
        """Drop sessions idle longer than the TTL; return how many."""
        if self.ttl is None:
            return 0
        cutoff = now - self.ttl
        doomed = [k for k, s in self._idle.items() if s.last_used < cutoff]
        for key in doomed:
            del self._idle[key]
        self.expirations += len(doomed)
        return len(doomed)

    def discard(self, key: SessionKey) -> bool:
        busy = self._busy.pop(key, None)
        idle = self._idle.pop(key, None)
        return busy is not None or idle is not None

    def evict(self, key: SessionKey) -> bool:
        """Admin eviction: drop one idle session. A busy one stays."""
        if self._idle.pop(key, None) is None:
            return False
        self.evictions += 1
        return True

    def discard_where(self, tenant_id: str | None, user_id: str | None) -> int:
        count = 0
        for table in (self._idle, self._busy):
            doomed = [
                k
                for k in table
                if (tenant_id is None or k.tenant_id == tenant_id)
                and (user_id is None or k.user_id == user_id)
            ]
            for key in doomed:
                del table[key]
            count += len(doomed)
        return count

    def busy_count(self) -> int:
        return len(self._busy)
