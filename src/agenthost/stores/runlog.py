"""Run logs, idempotency keys and cancel requests: what runs share across processes.

A second, small storage protocol that every backend implements beside
:class:`~agenthost.stores.base.SessionStore` (the runtime above it is
:mod:`agenthost.runs`):

- **Run log**: the events of one published run, in order. Each event has a seq
  (1, 2, 3, ...) assigned by the one process running the turn.
  :meth:`RunLogStore.open_run_log` creates the log's header (its owner and last
  seq); :meth:`RunLogStore.append_run_events` is a compare-and-set on that last
  seq, so no event is ever duplicated or reordered, and a log that was erased
  or purged takes nothing more: the missing header is the fence.
- **Idempotency key**: claimed atomically with the log of the run it names,
  insert-if-absent at the store (an expired record is replaced), so among any
  number of processes retrying one request exactly one runs it. The record
  gets the run's terminal event as its result, or is released if the run never
  began (so that a later retry may run it).
- **Cancel request**: a flag any process sets and the process running the run
  polls.

Times are the caller's (``now``), never the store's clock, so hosts and tests
agree on what has expired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import orjson

from agenthost.keys import SessionKey

EventRow = tuple[int, dict[str, Any]]
"""One stored event: its seq in the run's log and its payload (``{"type": ..., ...}``)."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A claimed idempotency key: who claimed it, for which request, and the run it started."""

    tenant_id: str
    user_id: str
    key: str
    fingerprint: str
    run_id: str
    session_id: str
    created_at: float
    expires_at: float
    result: dict[str, Any] | None = None

    def with_result(self, result: dict[str, Any] | None) -> IdempotencyRecord:
        return replace(self, result=result)


@dataclass(frozen=True, slots=True)
class RunLogHeader:
    """Whose run a log belongs to, its last seq, and until when it is kept."""

    run_id: str
    key: SessionKey
    last_seq: int
    updated_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class RunLog:
    header: RunLogHeader
    events: list[EventRow]


@runtime_checkable
class RunLogStore(Protocol):
    async def open_run_log(
        self,
        run_id: str,
        key: SessionKey,
        *,
        now: float,
        retention: float,
        claim: IdempotencyRecord | None = None,
    ) -> IdempotencyRecord | None:
        """Create the run's log, kept ``retention`` seconds after its last append.

        A log that exists already is left as it is (a later phase of the run, such
        as the continuation after an approval). With ``claim``, its key is claimed
        in the same atomic step: if a record that has not expired holds the key,
        that record is returned and nothing is created; an expired one is replaced.
        """

    async def append_run_events(
        self, run_id: str, events: Sequence[EventRow], *, now: float, retention: float
    ) -> bool:
        """Append events whose seqs continue the log (``events[0]`` follows its last seq).

        False, with nothing written, if the log does not exist (never opened,
        erased, purged) or its last seq is not ``events[0][0] - 1``.
        """

    async def read_run_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> RunLog | None:
        """The log's header and its events with ``seq > after_seq``, oldest first."""

    async def finish_idempotency(
        self, tenant_id: str, user_id: str, key: str, *, run_id: str, result: dict[str, Any]
    ) -> None:
        """Store the run's result on the record, if the record still names ``run_id``."""

    async def release_idempotency(
        self, tenant_id: str, user_id: str, key: str, *, run_id: str
    ) -> None:
        """Delete the record, if it still names ``run_id`` (its run never began)."""

    async def request_cancel(self, run_id: str, *, now: float) -> None:
        """Ask the process running ``run_id`` to cancel it."""

    async def cancel_requests(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` someone asked to cancel."""

    async def purge_runs(self, *, now: float) -> int:
        """Delete expired logs, idempotency records and cancel requests; return logs deleted."""


CANCEL_REQUEST_TTL = 3600.0
"""Seconds a cancel request is kept (the run it names has long finished by then)."""


def encode_event(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def decode_event(raw: bytes | str | memoryview) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
    return value


def already_appended(stored: RunLog | None, events: Sequence[EventRow]) -> bool:
    """Whether a refused append is in fact our own, committed by an attempt whose reply
    was lost (the client retried it): the log holds exactly these events at these seqs."""
    if stored is None:
        return False
    return list(stored.events[: len(events)]) == [(seq, data) for seq, data in events]


def fingerprint(request: dict[str, Any]) -> str:
    """A stable digest of a request (keys sorted), to tell a retry from a different request."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


# -- SQL shared by SQLite and PostgreSQL (numbered ``?N`` placeholders, see stores.sql) --


def runlog_schema(*, blob: str, if_not_exists: str = "") -> list[str]:
    """The tables, as statements: ``blob`` is the byte type (BLOB, BYTEA)."""
    e = if_not_exists
    return [
        f"""CREATE TABLE {e}run_logs (
            run_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL,
            session_id TEXT NOT NULL, last_seq BIGINT NOT NULL DEFAULT 0,
            updated_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
        f"CREATE INDEX {e}run_logs_expires ON run_logs (expires_at)",
        f"CREATE INDEX {e}run_logs_owner ON run_logs (tenant_id, user_id, session_id)",
        f"""CREATE TABLE {e}run_events (
            run_id TEXT NOT NULL, seq BIGINT NOT NULL, data {blob} NOT NULL,
            PRIMARY KEY (run_id, seq))""",
        f"""CREATE TABLE {e}idempotency_keys (
            tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, key TEXT NOT NULL,
            fingerprint TEXT NOT NULL, run_id TEXT NOT NULL, session_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
            result {blob}, PRIMARY KEY (tenant_id, user_id, key))""",
        f"CREATE INDEX {e}idempotency_keys_expires ON idempotency_keys (expires_at)",
        f"CREATE INDEX {e}idempotency_keys_session ON idempotency_keys "
        "(tenant_id, user_id, session_id)",
        f"""CREATE TABLE {e}run_cancels (
            run_id TEXT PRIMARY KEY, requested_at DOUBLE PRECISION NOT NULL)""",
    ]


IDEMPOTENCY_COLUMNS = (
    "tenant_id, user_id, key, fingerprint, run_id, session_id, created_at, expires_at, result"
)
SELECT_IDEMPOTENCY = (
    f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys "
    "WHERE tenant_id = ?1 AND user_id = ?2 AND key = ?3"
)
# Claims a key that is free or expired (?7 is now): one row changed means it is ours.
CLAIM_IDEMPOTENCY = """
INSERT INTO idempotency_keys (tenant_id, user_id, key, fingerprint, run_id, session_id,
    created_at, expires_at, result)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)
ON CONFLICT (tenant_id, user_id, key) DO UPDATE SET fingerprint = ?4, run_id = ?5,
    session_id = ?6, created_at = ?7, expires_at = ?8, result = NULL
WHERE idempotency_keys.expires_at <= ?7
"""
FINISH_IDEMPOTENCY = """
UPDATE idempotency_keys SET result = ?5
WHERE tenant_id = ?1 AND user_id = ?2 AND key = ?3 AND run_id = ?4
"""
RELEASE_IDEMPOTENCY = """
DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND user_id = ?2 AND key = ?3 AND run_id = ?4
"""
OPEN_RUN_LOG = """
INSERT INTO run_logs (run_id, tenant_id, user_id, session_id, last_seq, updated_at, expires_at)
VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6) ON CONFLICT (run_id) DO NOTHING
"""
# The compare-and-set of an append: ?4 is the seq the writer believes is last.
ADVANCE_RUN_LOG = """
UPDATE run_logs SET last_seq = ?2, updated_at = ?3, expires_at = ?5
WHERE run_id = ?1 AND last_seq = ?4
"""
INSERT_RUN_EVENT = "INSERT INTO run_events (run_id, seq, data) VALUES (?1, ?2, ?3)"
SELECT_RUN_LOG = """
SELECT tenant_id, user_id, session_id, last_seq, updated_at, expires_at
FROM run_logs WHERE run_id = ?1
"""
SELECT_RUN_EVENTS = "SELECT seq, data FROM run_events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq"
UPSERT_CANCEL = """
INSERT INTO run_cancels (run_id, requested_at) VALUES (?1, ?2)
ON CONFLICT (run_id) DO NOTHING
"""
PURGE_EVENTS = """
DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM run_logs WHERE expires_at < ?1)
"""
PURGE_LOGS = "DELETE FROM run_logs WHERE expires_at < ?1"
PURGE_IDEMPOTENCY = "DELETE FROM idempotency_keys WHERE expires_at < ?1"
PURGE_CANCELS = "DELETE FROM run_cancels WHERE requested_at < ?1"


def erase_statements(where: str) -> list[str]:
    """Statements deleting the run logs and idempotency records in a session scope.

    ``where`` is a ``WHERE`` clause over tenant_id/user_id/session_id (possibly
    empty), as :func:`agenthost.stores.sql.scope_filter` builds it.
    """
    return [
        f"DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM run_logs{where})",
        f"DELETE FROM run_logs{where}",
        f"DELETE FROM idempotency_keys{where}",
    ]


def idempotency_from_row(row: Sequence[Any]) -> IdempotencyRecord:
    result = row[8]
    return IdempotencyRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        float(row[6]),
        float(row[7]),
        None if result is None else decode_event(result),
    )


def header_from_row(run_id: str, row: Sequence[Any]) -> RunLogHeader:
    return RunLogHeader(
        run_id, SessionKey(row[0], row[1], row[2]), int(row[3]), float(row[4]), float(row[5])
    )
