"""The run-log protocol (:mod:`agenthost.stores.runlog`) on SQLite, for SQLiteStore.

Writes go through the store's one writing connection (``BEGIN IMMEDIATE``), so a
claim's read-then-insert and an append's compare-and-set are serialised with
every other process writing the same database file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from agenthost.keys import SessionKey
from agenthost.stores import runlog as rl
from agenthost.stores.runlog import EventRow, IdempotencyRecord, RunLog

T = TypeVar("T")

SCHEMA = rl.runlog_schema(blob="BLOB", if_not_exists="IF NOT EXISTS ")


class _SQLite(Protocol):
    @property
    def conn(self) -> sqlite3.Connection: ...

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


def _claim(conn: sqlite3.Connection, claim: IdempotencyRecord) -> IdempotencyRecord | None:
    """Claim the key (free or expired), or return the live record that holds it."""
    c = claim
    args = (c.tenant_id, c.user_id, c.key, c.fingerprint, c.run_id, c.session_id)
    if conn.execute(rl.CLAIM_IDEMPOTENCY, (*args, c.created_at, c.expires_at)).rowcount == 1:
        return None
    row = conn.execute(rl.SELECT_IDEMPOTENCY, (c.tenant_id, c.user_id, c.key)).fetchone()
    return rl.idempotency_from_row(row)


class SQLiteRunLog:
    """Mixed into :class:`~agenthost.stores.sqlite.SQLiteStore`."""

    async def open_run_log(
        self: _SQLite,
        run_id: str,
        key: SessionKey,
        *,
        now: float,
        retention: float,
        claim: IdempotencyRecord | None = None,
    ) -> IdempotencyRecord | None:
        owner = (key.tenant_id, key.user_id, key.session_id)

        def work(conn: sqlite3.Connection) -> IdempotencyRecord | None:
            if claim is not None:
                held = _claim(conn, claim)
                if held is not None:
                    return held
            conn.execute(rl.OPEN_RUN_LOG, (run_id, *owner, now, now + retention))
            return None

        return await self._write(work)

    async def append_run_events(
        self: _SQLite, run_id: str, events: Sequence[EventRow], *, now: float, retention: float
    ) -> bool:
        if not events:
            return self.conn.execute(rl.SELECT_RUN_LOG, (run_id,)).fetchone() is not None
        first, last = events[0][0], events[-1][0]
        rows = [(run_id, seq, rl.encode_event(data)) for seq, data in events]

        def work(conn: sqlite3.Connection) -> bool:
            moved = conn.execute(
                rl.ADVANCE_RUN_LOG, (run_id, last, now, first - 1, now + retention)
            )
            if moved.rowcount != 1:
                return False
            conn.executemany(rl.INSERT_RUN_EVENT, rows)
            return True

        return await self._write(work)

    async def read_run_log(
        self: _SQLite, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> RunLog | None:
        conn = self.conn
        row = conn.execute(rl.SELECT_RUN_LOG, (run_id,)).fetchone()
        if row is None:
            return None
        query = rl.SELECT_RUN_EVENTS + ("" if limit is None else f" LIMIT {int(limit)}")
        rows = conn.execute(query, (run_id, after_seq)).fetchall()
        return RunLog(
            rl.header_from_row(run_id, row), [(r[0], rl.decode_event(r[1])) for r in rows]
        )

    async def finish_idempotency(
        self: _SQLite,
        tenant_id: str,
        user_id: str,
        key: str,
        *,
        run_id: str,
        result: dict[str, Any],
    ) -> None:
        args = (tenant_id, user_id, key, run_id, rl.encode_event(result))
        await self._write(lambda conn: conn.execute(rl.FINISH_IDEMPOTENCY, args))

    async def release_idempotency(
        self: _SQLite, tenant_id: str, user_id: str, key: str, *, run_id: str
    ) -> None:
        args = (tenant_id, user_id, key, run_id)
        await self._write(lambda conn: conn.execute(rl.RELEASE_IDEMPOTENCY, args))

    async def request_cancel(self: _SQLite, run_id: str, *, now: float) -> None:
        await self._write(lambda conn: conn.execute(rl.UPSERT_CANCEL, (run_id, now)))

    async def cancel_requests(self: _SQLite, run_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(run_ids)
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            marks = ", ".join(f"?{i + 1}" for i in range(len(chunk)))
            rows = self.conn.execute(
                f"SELECT run_id FROM run_cancels WHERE run_id IN ({marks})", chunk
            ).fetchall()
            found.update(r[0] for r in rows)
        return found

    async def purge_runs(self: _SQLite, *, now: float) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute(rl.PURGE_EVENTS, (now,))
            deleted = conn.execute(rl.PURGE_LOGS, (now,)).rowcount
            conn.execute(rl.PURGE_IDEMPOTENCY, (now,))
            conn.execute(rl.PURGE_CANCELS, (now - rl.CANCEL_REQUEST_TTL,))
            return int(deleted)

        return await self._write(work)


def erase_runs(conn: sqlite3.Connection, where: str, params: Sequence[str]) -> None:
    """Inside the store's delete: the run logs and keys of the deleted sessions go too."""
    for statement in rl.erase_statements(where):
        conn.execute(statement, params)
