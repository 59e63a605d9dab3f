"""The SessionStore protocol: a small set of async methods every backend implements.

A turn touches the store through :meth:`SessionStore.write` (append the turn's new
messages, upsert its run record, update session state) and, when a session is not
live in memory, :meth:`SessionStore.load` (the session row plus only the last N
messages). Everything else (paging, listing, erasure) is off the hot path.

Long-term memory is a set of :class:`MemoryRecord` per (tenant, user), searched
with each backend's own full-text index (see :mod:`agenthost.stores.search`).
A session's compacted past is a chain of append-only :class:`SessionSummary`
records, written with the session's other writes (:attr:`WriteBatch.summary`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agenthost.events import RunStatus
from agenthost.keys import SessionKey
from agenthost.messages import Message, ToolCall, Usage


def new_revision() -> int:
    """A fresh session revision: random, so no two writes anywhere ever share one.

    A revision is compared for equality only. Being random (53 bits, exact in a
    JavaScript number) rather than a counter, a session deleted and created anew
    never repeats a revision that a stale copy of the old one still holds.

    Drawn from :mod:`random` (seeded from the OS, and reseeded in a forked worker),
    not ``os.urandom``: a revision needs to be unique, not secret, and on the hot
    path a system call per write costs more than the rest of building it.
    """
    return random.getrandbits(53) or 1


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A tool call that waits for a human's decision, and the run it belongs to."""

    call_id: str
    name: str
    arguments: str
    run_id: str

    @property
    def call(self) -> ToolCall:
        return ToolCall(self.call_id, self.name, self.arguments)

    @classmethod
    def of(cls, call: ToolCall, run_id: str) -> PendingApproval:
        return cls(call.id, call.name, call.arguments, run_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingApproval:
        return cls(data["id"], data["name"], data["arguments"], data["run_id"])


def pending_to_json(pending: Iterable[PendingApproval]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in pending]


def pending_from_json(data: Iterable[Mapping[str, Any]] | None) -> list[PendingApproval]:
    return [PendingApproval.from_dict(p) for p in data or ()]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What a session's model is told of the messages that fell out of its window.

    Covers messages ``from_seq``..``to_seq``. Each compaction appends a new record
    (``version`` + 1); the newest one is the session's summary. A failed compaction
    appends a record that keeps the previous text and range and says ``error``.
    """

    version: int
    text: str
    from_seq: int
    to_seq: int
    created_at: float
    model: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "text": self.text,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "created_at": self.created_at,
            "model": self.model,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionSummary:
        return cls(
            data["version"],
            data["text"],
            data["from_seq"],
            data["to_seq"],
            data["created_at"],
            data.get("model"),
            data.get("error"),
        )


@dataclass(slots=True)
class SessionRecord:
    key: SessionKey
    created_at: float
    updated_at: float
    last_seq: int = 0
    message_count: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    pending: list[PendingApproval] = field(default_factory=list)
    revision: int = 0
    summary: SessionSummary | None = None
    """The newest summary: read by :meth:`SessionStore.load`, not by listings."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenant_id": self.key.tenant_id,
            "user_id": self.key.user_id,
            "session_id": self.key.session_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message_count": self.message_count,
            "last_seq": self.last_seq,
            "state": self.state,
            "config": self.config,
            "pending_approvals": pending_to_json(self.pending),
            "revision": self.revision,
        }
        if self.summary is not None:
            out["summary"] = self.summary.to_dict()
        return out


@dataclass(slots=True)
class MemoryRecord:
    """One thing remembered about a user, scoped to ``(tenant_id, user_id)``.

    ``session_id``/``run_id`` say where it came from (``None`` when an application
    stored it). ``revision`` changes on every update (random, as a session's).
    ``embedding`` is kept for semantic ranking when an embedder is configured.
    """

    memory_id: str
    tenant_id: str
    user_id: str
    text: str
    kind: str | None = None
    tags: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    session_id: str | None = None
    run_id: str | None = None
    revision: int = 0
    embedding: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.memory_id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "text": self.text,
            "kind": self.kind,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "session_id": self.session_id,
            "run_id": self.run_id,
            "revision": self.revision,
        }


@dataclass(frozen=True, slots=True)
class MemoryFence:
    """Write a memory only while this session is at this revision.

    What a turn (or work after it) writes carries one: erasing the session or its
    user makes the store refuse the write with ``Conflict``, as it refuses the
    turn's own writes, so nothing is written back after an erasure.
    """

    key: SessionKey
    revision: int


@dataclass(slots=True)
class RunRecord:
    run_id: str
    key: SessionKey
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    request_id: str | None = None

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
            request_id=data.get("request_id"),
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
            "request_id": self.request_id,
        }


@dataclass(slots=True)
class Snapshot:
    """A session as loaded from the store: its row, its last N messages, stale runs."""

    session: SessionRecord
    window: list[Message]
    running: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Lease:
    """A session's cross-process lease, kept by the store itself (PostgreSQL's lease rows):
    the holder's first write takes it in the same statement, its last gives it back.

    Set on a :class:`WriteBatch` only by a coordinator folded into the store
    (:meth:`agenthost.locks.Coordinator.fold`); other stores never see one. The store
    sets ``held`` when a write took it and clears it when one gave it back; ``since``
    (``time.monotonic()``) is when it was taken or last renewed, for the keeper.
    """

    key: SessionKey
    token: str
    ttl: float
    wait: bool
    held: bool = False
    since: float = 0.0


@dataclass(slots=True)
class WriteBatch:
    """Everything one write to a session stores, committed atomically or not at all.

    Revisions: every write gives the session a new ``revision`` (drawn by
    :func:`new_revision` when ``None``). With ``base_revision`` set, the write is
    a compare-and-set: the store refuses it with ``Conflict``, writing nothing,
    unless the session's revision is ``base_revision`` (``0``: the session must
    not exist yet). The Host always sets it; ``None`` writes unconditionally and
    is only for tools that own the store alone (imports, tests).

    ``messages`` carry their ``seq`` already (contiguous after ``base_seq``, the
    session's last seq when the batch was built); a store also refuses the batch
    if a message with one of those seqs exists. ``state``/``config``/``pending``
    replace the stored value when not ``None``. Without ``base_revision`` the
    session row is created if missing. ``summary`` is appended to the session's
    summaries (a duplicate ``version`` is refused with ``Conflict``).

    ``lease`` (folded coordination only): a write whose lease is not ``held`` takes it
    and is refused with ``SessionBusy``, writing nothing, while another holder has it;
    with ``release`` a write gives a held lease back once it is written.
    """

    key: SessionKey
    now: float
    base_seq: int
    messages: Sequence[Message] = ()
    run: RunRecord | None = None
    state: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    pending: list[PendingApproval] | None = None
    base_revision: int | None = None
    revision: int | None = None
    summary: SessionSummary | None = None
    lease: Lease | None = None
    release: bool = False

    def new_revision(self) -> int:
        """The revision this write gives the session (drawn once, on first ask)."""
        if self.revision is None:
            self.revision = new_revision()
        return self.revision


@runtime_checkable
class SessionStore(Protocol):
    async def open(self) -> None:
        """Connect and create/upgrade the schema. Idempotent."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` if the store cannot serve requests."""

    async def write(self, batch: WriteBatch) -> None: ...

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        """The session row (with its newest summary), its last ``window`` messages
        (oldest first), running runs."""

    async def last_seq(self, key: SessionKey) -> int:
        """The session's last message seq (0 if unknown)."""

    async def revision(self, key: SessionKey) -> int:
        """The session's revision (0 if it does not exist): a cheap staleness check."""

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

    async def summaries(self, key: SessionKey) -> list[SessionSummary]:
        """Every summary record of a session, oldest first (for export)."""

    # -- long-term memory: erased with the user by ``delete`` --------------------------

    async def add_memory(
        self, record: MemoryRecord, *, fence: MemoryFence | None = None, cap: int | None = None
    ) -> None:
        """Store a new memory. ``Conflict`` (nothing written) if the fence's session is
        not at its revision or the id exists; ``QuotaExceeded`` if the user has ``cap``."""

    async def replace_memory(
        self, record: MemoryRecord, *, base_revision: int, fence: MemoryFence | None = None
    ) -> bool:
        """Replace text, kind, tags, updated_at, revision and embedding of the memory if
        it is still at ``base_revision``; False if not (gone, or changed meanwhile)."""

    async def delete_memory(
        self, tenant_id: str, user_id: str, memory_id: str, *, fence: MemoryFence | None = None
    ) -> bool: ...

    async def get_memory(
        self, tenant_id: str, user_id: str, memory_id: str
    ) -> MemoryRecord | None: ...

    async def list_memories(
        self,
        tenant_id: str,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        embeddings: bool = False,
    ) -> list[MemoryRecord]:
        """The user's memories, newest first (created_at, then id, descending)."""

    async def count_memories(self, tenant_id: str, user_id: str) -> int: ...

    async def search_memories(
        self,
        tenant_id: str,
        user_id: str,
        terms: Sequence[str],
        *,
        limit: int,
        embeddings: bool = False,
    ) -> list[tuple[MemoryRecord, float]]:
        """Memories matching any of ``terms`` (:func:`agenthost.stores.search.query_terms`),
        best first (ties: most recently updated first), each with its relevance score
        (higher is better; comparable only within one answer)."""


@runtime_checkable
class LoadsAfter(Protocol):
    """A store that can load a session without the messages a cached copy already holds
    (optional: the session runtime then reloads a stale copy by what it lacks)."""

    async def load_after(self, key: SessionKey, *, window: int, after_seq: int) -> Snapshot | None:
        """As :meth:`SessionStore.load`, with only the messages after ``after_seq`` (at
        most the last ``window`` of them, oldest first)."""


def check_scope(tenant_id: str | None, user_id: str | None, session_id: str | None) -> None:
    if session_id is not None and user_id is None:
        raise ValueError("deleting by session_id needs user_id")
    if user_id is not None and tenant_id is None:
        raise ValueError("deleting by user_id needs tenant_id")
