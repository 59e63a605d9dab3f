"""The run-log protocol (:mod:`agenthost.stores.runlog`) on PostgreSQL, for PostgresStore.

A claim is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired``: PostgreSQL
serialises concurrent inserts of one key, so exactly one claimer gets the row.
An append is one statement: the header's compare-and-set and the inserts of the
events, as data-modifying CTEs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from agenthost.keys import SessionKey
from agenthost.stores import runlog as rl
from agenthost.stores.runlog import EventRow, IdempotencyRecord, RunLog
from agenthost.stores.sql import to_postgres

T = TypeVar("T")
Connection = Any  # asyncpg ships no type stubs

MIGRATION_SQL = ";\n".join(rl.runlog_schema(blob="BYTEA")) + ";"

CLAIM = to_postgres(rl.CLAIM_IDEMPOTENCY)
SELECT_IDEMPOTENCY = to_postgres(rl.SELECT_IDEMPOTENCY)
FINISH = to_postgres(rl.FINISH_IDEMPOTENCY)
RELEASE = to_postgres(rl.RELEASE_IDEMPOTENCY)
OPEN = to_postgres(rl.OPEN_RUN_LOG)
SELECT_LOG = to_postgres(rl.SELECT_RUN_LOG)
SELECT_EVENTS = to_postgres(rl.SELECT_RUN_EVENTS)
UPSERT_CANCEL = to_postgres(rl.UPSERT_CANCEL)
APPEND = f"""
WITH moved AS ({to_postgres(rl.ADVANCE_RUN_LOG)} RETURNING 1),
appended AS (
    INSERT INTO run_events (run_id, seq, data)
    SELECT $1, e.seq, e.data FROM unnest($6::bigint[], $7::bytea[]) AS e(seq, data)
    WHERE EXISTS (SELECT 1 FROM moved))
SELECT count(*) FROM moved
"""
PURGE = [
    to_postgres(rl.PURGE_EVENTS),
    to_postgres(rl.PURGE_LOGS),
    to_postgres(rl.PURGE_IDEMPOTENCY),
]


class _Postgres(Protocol):
    async def _call(
        self, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool = False
    ) -> T: ...


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class PostgresRunLog:
    """Mixed into :class:`~agenthost.stores.postgres.PostgresStore`."""

    async def open_run_log(
        self: _Postgres,
        run_id: str,
        key: SessionKey,
        *,
        now: float,
        retention: float,
        claim: IdempotencyRecord | None = None,
    ) -> IdempotencyRecord | None:
        owner = (key.tenant_id, key.user_id, key.session_id)

        async def work(conn: Connection) -> IdempotencyRecord | None:
            if claim is not None:
                c = claim
                status = await conn.execute(
                    CLAIM,
                    c.tenant_id,
                    c.user_id,
                    c.key,
                    c.fingerprint,
                    c.run_id,
                    c.session_id,
                    c.created_at,
                    c.expires_at,
                )
                if _count(status) != 1:
                    row = await conn.fetchrow(SELECT_IDEMPOTENCY, c.tenant_id, c.user_id, c.key)
                    return rl.idempotency_from_row(row)
            await conn.execute(OPEN, run_id, *owner, now, now + retention)
            return None

        return await self._call(work, transaction=True)

    async def append_run_events(
        self: _Postgres, run_id: str, events: Sequence[EventRow], *, now: float, retention: float
    ) -> bool:
        if not events:
            row = await self._call(lambda conn: conn.fetchrow(SELECT_LOG, run_id))
            return row is not None
        first, last = events[0][0], events[-1][0]
        seqs = [seq for seq, _data in events]
        blobs = [rl.encode_event(data) for _seq, data in events]
        args = (run_id, last, now, first - 1, now + retention, seqs, blobs)
        moved = await self._call(lambda conn: conn.fetchval(APPEND, *args))
        if moved == 1:
            return True
        # A retry after a connection lost mid-append may find its own append committed.
        stored = await PostgresRunLog.read_run_log(self, run_id, after_seq=first - 1)
        return rl.already_appended(stored, events)

    async def read_run_log(
        self: _Postgres, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> RunLog | None:
        query = SELECT_EVENTS + ("" if limit is None else f" LIMIT {int(limit)}")

        async def work(conn: Connection) -> RunLog | None:
            row = await conn.fetchrow(SELECT_LOG, run_id)
            if row is None:
                return None
            rows = await conn.fetch(query, run_id, after_seq)
            events = [(int(r[0]), rl.decode_event(r[1])) for r in rows]
            return RunLog(rl.header_from_row(run_id, row), events)

        return await self._call(work)

    async def finish_idempotency(
        self: _Postgres,
        tenant_id: str,
        user_id: str,
        key: str,
        *,
        run_id: str,
        result: dict[str, Any],
    ) -> None:
        blob = rl.encode_event(result)
        await self._call(lambda conn: conn.execute(FINISH, tenant_id, user_id, key, run_id, blob))

    async def release_idempotency(
        self: _Postgres, tenant_id: str, user_id: str, key: str, *, run_id: str
    ) -> None:
        await self._call(lambda conn: conn.execute(RELEASE, tenant_id, user_id, key, run_id))

    async def request_cancel(self: _Postgres, run_id: str, *, now: float) -> None:
        await self._call(lambda conn: conn.execute(UPSERT_CANCEL, run_id, now))

    async def cancel_requests(self: _Postgres, run_ids: Sequence[str]) -> set[str]:
        if not run_ids:
            return set()
        ids = list(run_ids)
        rows = await self._call(
            lambda conn: conn.fetch("SELECT run_id FROM run_cancels WHERE run_id = ANY($1)", ids)
        )
        return {r[0] for r in rows}

    async def purge_runs(self: _Postgres, *, now: float) -> int:
        async def work(conn: Connection) -> int:
            await conn.execute(PURGE[0], now)
            deleted = _count(await conn.execute(PURGE[1], now))
            await conn.execute(PURGE[2], now)
            await conn.execute(to_postgres(rl.PURGE_CANCELS), now - rl.CANCEL_REQUEST_TTL)
            return deleted

        return await self._call(work, transaction=True)


async def erase_runs(conn: Connection, where: str, params: Sequence[str]) -> None:
    """Inside the store's delete: the run logs and keys of the deleted sessions go too."""
    for statement in rl.erase_statements(where):
        await conn.execute(to_postgres(statement), *params)
