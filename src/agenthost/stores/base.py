"""The SessionStore protocol: a small set of async methods every backend implements.

A turn touches the store through :meth:`SessionStore.write` (append the turn's new
messages, upsert its run record, update session state) and, when a session is not
live in memory, :meth:`SessionStore.load` (the session row plus only the last N
messages). Everything else (paging, listing, erasure) is off the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agenthost.events import RunStatus
from agenthost.keys import SessionKey
from agenthost.messages import Message, Usage


@dataclass(slots=True)
class SessionRecord:
    key: SessionKey
    created_at: float
    updated_at: float
    last_seq: int = 0
    message_count: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.key.tenant_id,
            "user_id": self.key.user_id,
            "session_id": self.key.session_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message_count": self.message_count,
            "last_seq": self.last_seq,
            "state": self.state,
            "config": self.config,
            "pending_approvals": self.pending,
        }


@dataclass(slots=True)
class RunRecord:
    run_id: str
    key: SessionKey
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Rebuild a run from a stored row or document (``usage`` a dict or None)."""
        usage = data["usage"] or {}
        return cls(
            run_id=data["run_id"],
            key=SessionKey(data["tenant_id"], data["user_id"], data["session_id"]),
            status=data["status"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            error=data["error"],
            usage=Usage(
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                usage.get("requests", 0),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "session_id": self.key.session_id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "usage": self.usage.to_dict(),
        }


@dataclass(slots=True)
class Snapshot:
    """A session as loaded from the store: its row, its last N messages, stale runs."""

    session: SessionRecord
    window: list[Message]
    running: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WriteBatch:
    """Everything one step of a turn writes, committed atomically.

    ``messages`` carry their ``seq`` already (contiguous after ``base_seq``, the
    session's last seq when the batch was built). A store refuses the batch with
    ``Conflict`` if a message with one of those seqs exists: another writer got
    there first. ``state``/``config``/``pending`` replace the stored value when
    not ``None``. The session row is created if missing.
    """

    key: SessionKey
    now: float
    base_seq: int
    messages: Sequence[Message] = ()
    run: RunRecord | None = None
    state: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    pending: list[dict[str, Any]] | None = None


@runtime_checkable
class SessionStore(Protocol):
    async def open(self) -> None:
        """Connect and create/upgrade the schema. Idempotent."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` if the store cannot serve requests."""

    async def write(self, batch: WriteBatch) -> None: ...

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        """The session row, its last ``window`` messages (oldest first), running runs."""

    async def last_seq(self, key: SessionKey) -> int:
        """The session's last message seq (0 if unknown): a cheap staleness check."""

    async def messages(
        self, key: SessionKey, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, oldest first, at most ``limit``."""

    async def sessions(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        """Sessions, most recently updated first, filtered by tenant and user."""

    async def count_sessions(
        self, *, tenant_id: str | None = None, user_id: str | None = None
    ) -> int: ...

    async def delete(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Delete the matching sessions with their messages and runs; return how many.

        All ``None`` deletes everything. ``session_id`` needs ``user_id``, which needs
        ``tenant_id``.
        """

    async def runs(self, key: SessionKey, *, limit: int = 50) -> list[RunRecord]:
        """Run records of a session, newest first."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def delete_idle(self, *, before: float, limit: int) -> int:
        """Delete up to ``limit`` sessions last updated before ``before`` (retention)."""

    async def get_memory(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """The user's long-term memory (a JSON object shared by their sessions)."""

    async def set_memory(self, tenant_id: str, user_id: str, memory: dict[str, Any]) -> None: ...


def check_scope(tenant_id: str | None, user_id: str | None, session_id: str | None) -> None:
    if session_id is not None and user_id is None:
        raise ValueError("deleting by session_id needs user_id")
    if user_id is not None and tenant_id is None:
        raise ValueError("deleting by user_id needs tenant_id")
