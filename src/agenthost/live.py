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

    def append(self, messages: list[Message]) -> None:
        self.window.extend(messages)
        self.last_seq = messages[-1].seq
        self.message_count += len(messages)


class LiveSessionCache:
    """LRU by last use, capped at ``max_live``; entries idle over ``ttl`` seconds expire.

    A busy session (turn in progress) is never evicted or expired.
    """

    def __init__(self, *, max_live: int, ttl: float | None) -> None:
        if max_live < 1:
            raise ValueError("max_live_sessions must be at least 1")
        self.max_live = max_live
        self.ttl = ttl
        self.evictions = 0
        self.expirations = 0
        self._sessions: OrderedDict[SessionKey, LiveSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[LiveSession]:
        return iter(list(self._sessions.values()))

    def get(self, key: SessionKey, now: float) -> LiveSession | None:
        session = self._sessions.get(key)
        if session is None:
            return None
        if self.ttl is not None and not session.busy and now - session.last_used > self.ttl:
            del self._sessions[key]
            self.expirations += 1
            return None
        self._sessions.move_to_end(key)
        return session

    def put(self, session: LiveSession) -> None:
        self._sessions[session.key] = session
        self._sessions.move_to_end(session.key)
        self.trim()

    def trim(self) -> int:
        """Evict least recently used idle sessions until within the cap."""
        excess = len(self._sessions) - self.max_live
        if excess <= 0:
            return 0
        doomed = []
        for key, session in self._sessions.items():
            if not session.busy:
                doomed.append(key)
                if len(doomed) == excess:
                    break
        for key in doomed:
            del self._sessions[key]
        self.evictions += len(doomed)
        return len(doomed)

    def sweep(self, now: float) -> int:
        """Drop sessions idle longer than the TTL; return how many."""
        if self.ttl is None:
            return 0
        cutoff = now - self.ttl
        doomed = [k for k, s in self._sessions.items() if not s.busy and s.last_used < cutoff]
        for key in doomed:
            del self._sessions[key]
        self.expirations += len(doomed)
        return len(doomed)

    def discard(self, key: SessionKey) -> bool:
        return self._sessions.pop(key, None) is not None

    def evict(self, key: SessionKey) -> bool:
        """Admin eviction: drop one idle session. A busy one stays."""
        session = self._sessions.get(key)
        if session is None or session.busy:
            return False
        del self._sessions[key]
        self.evictions += 1
        return True

    def discard_where(self, tenant_id: str | None, user_id: str | None) -> int:
        doomed = [
            k
            for k in self._sessions
            if (tenant_id is None or k.tenant_id == tenant_id)
            and (user_id is None or k.user_id == user_id)
        ]
        for key in doomed:
            del self._sessions[key]
        return len(doomed)

    def busy_count(self) -> int:
        return sum(1 for s in self._sessions.values() if s.busy)
