"""Usage in SQLite or PostgreSQL: one row per (tenant, day, user, agent, model).

A flush is one transaction of upserts that add to the row's counters
(``ON CONFLICT ... DO UPDATE SET turns = usage_daily.turns + excluded.turns``),
so flushes from any number of processes add up exactly. The transaction also
records the flush's batch id in ``usage_batches``; a batch already recorded adds
nothing (a retry of a write whose reply was lost). Batch ids are kept a day. The table lives in the
store's own database (SQLite: the same file, a connection of its own; PostgreSQL:
the URL's ``schema``) and is created on first use (``CREATE TABLE IF NOT
EXISTS``), unless a PostgreSQL URL says ``migrate=false``. The SQL is shared;
only the column types differ.

Erasing a user (:meth:`~agenthost.usage.rows.UsageLedger.erase_user`) is one
transaction: it records a fence in ``usage_erasures`` (tenant, user, until), adds
each of the user's rows to the ``(erased)`` row of the same tenant, day, agent and
model, and deletes them. A flush maps the users fenced at that moment to
``(erased)`` as it writes. The erasure must not interleave with a flush that began
before its fence was visible: SQLite's write lock (``BEGIN IMMEDIATE``) orders them;
in PostgreSQL the erasure locks ``usage_daily`` in SHARE ROW EXCLUSIVE mode, which
waits for the flushes in progress and holds back new ones until it commits (a flush
takes its snapshot after its locks, so it then sees the fence).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from agenthost.errors import StoreUnavailable
from agenthost.stores import sql
from agenthost.usage.rows import (
    COUNTERS,
    DIMENSIONS,
    ERASED_USER,
    ERASURE_FENCE,
    Dimension,
    UsageRow,
)

_TABLE = """
CREATE TABLE IF NOT EXISTS usage_daily (
    tenant_id TEXT NOT NULL, day TEXT NOT NULL, user_id TEXT NOT NULL,
    agent TEXT NOT NULL, model TEXT NOT NULL,
    turns {int} NOT NULL DEFAULT 0, errors {int} NOT NULL DEFAULT 0,
    input_tokens {int} NOT NULL DEFAULT 0, output_tokens {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, user_id, agent, model)
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS usage_daily_day ON usage_daily (day)"
_BATCHES = (
    "CREATE TABLE IF NOT EXISTS usage_batches (id TEXT PRIMARY KEY, at {real} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS usage_batches_at ON usage_batches (at)",
)
_ERASURES = (
    "CREATE TABLE IF NOT EXISTS usage_erasures (tenant_id TEXT NOT NULL, user_id TEXT NOT NULL,"
    " until {real} NOT NULL, PRIMARY KEY (tenant_id, user_id))"
)
BATCH_DAYS = 1.0

# A row's counters added to the row already there (``u``), if any.
ADD_TO_ROW = """
ON CONFLICT (tenant_id, day, user_id, agent, model) DO UPDATE SET
    turns = u.turns + excluded.turns,
    errors = u.errors + excluded.errors,
    input_tokens = u.input_tokens + excluded.input_tokens,
    output_tokens = u.output_tokens + excluded.output_tokens
"""

UPSERT = f"""
INSERT INTO usage_daily AS u (tenant_id, day, user_id, agent, model,
    turns, errors, input_tokens, output_tokens)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
{ADD_TO_ROW}"""

# PostgreSQL: a whole flush in one statement (rows sorted: flushes never deadlock),
# written only if its batch id is new; fenced users are written as $11 (``(erased)``).
UPSERT_MANY = f"""
WITH batch AS (
    INSERT INTO usage_batches (id, at) VALUES ($10, extract(epoch FROM clock_timestamp()))
    ON CONFLICT (id) DO NOTHING RETURNING id
), given AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
        AS g (tenant_id, day, user_id, agent, model, turns, errors, input_tokens, output_tokens)
), fenced AS (
    SELECT g.tenant_id, g.day,
        CASE WHEN EXISTS (
            SELECT 1 FROM usage_erasures e WHERE e.tenant_id = g.tenant_id
            AND e.user_id = g.user_id AND e.until > extract(epoch FROM clock_timestamp())
        ) THEN $11::text ELSE g.user_id END AS user_id,
        g.agent, g.model, g.turns, g.errors, g.input_tokens, g.output_tokens
    FROM given g
)
INSERT INTO usage_daily AS u (tenant_id, day, user_id, agent, model,
    turns, errors, input_tokens, output_tokens)
SELECT tenant_id, day, user_id, agent, model, sum(turns)::bigint, sum(errors)::bigint,
    sum(input_tokens)::bigint, sum(output_tokens)::bigint
FROM fenced WHERE EXISTS (SELECT 1 FROM batch)
GROUP BY tenant_id, day, user_id, agent, model
ORDER BY tenant_id, day, user_id, agent, model
{ADD_TO_ROW}"""

# Erasing a user (?1 tenant, ?2 user, ?3 ERASED_USER): fold, then delete.
FOLD_USER = f"""
INSERT INTO usage_daily AS u (tenant_id, day, user_id, agent, model,
    turns, errors, input_tokens, output_tokens)
SELECT tenant_id, day, CAST(?3 AS TEXT), agent, model,
    turns, errors, input_tokens, output_tokens
FROM usage_daily WHERE tenant_id = ?1 AND user_id = ?2
ORDER BY tenant_id, day, user_id, agent, model
{ADD_TO_ROW}"""
DELETE_USER = "DELETE FROM usage_daily WHERE tenant_id = ?1 AND user_id = ?2"
# ?1 tenant, ?2 user, ?3 until; SQLite passes the time, PostgreSQL asks its clock
FENCE = """
INSERT INTO usage_erasures (tenant_id, user_id, until) VALUES (?1, ?2, {until})
ON CONFLICT (tenant_id, user_id) DO UPDATE SET until = excluded.until
"""
FORGET_FENCES = "DELETE FROM usage_erasures WHERE until < {now}"

FORGET_BATCHES = """
DELETE FROM usage_batches WHERE id IN (
    SELECT id FROM usage_batches WHERE at < extract(epoch FROM clock_timestamp()) - $1
    LIMIT 10000 FOR UPDATE SKIP LOCKED
)
"""


def select(
    since: str, until: str, tenant_id: str | None, user_id: str | None, group_by: Sequence[str]
) -> tuple[str, list[str]]:
    """The grouped read (``?N`` placeholders) and its parameters."""
    params = [since, until]
    where = "day >= ?1 AND day <= ?2"
    for column, value in (("tenant_id", tenant_id), ("user_id", user_id)):
        if value is not None:
            params.append(value)
            where += f" AND {column} = ?{len(params)}"
    columns = [c for c in DIMENSIONS if c in group_by]  # an allow-list: safe to interpolate
    sums = ", ".join(f"SUM({c})" for c in COUNTERS)
    head = ", ".join([*columns, sums])
    statement = f"SELECT {head} FROM usage_daily WHERE {where}"
    if columns:
        listed = ", ".join(columns)
        statement += f" GROUP BY {listed} ORDER BY {listed}"
    return statement, params


def _rows(records: Sequence[Sequence[Any]], group_by: Sequence[str]) -> list[UsageRow]:
    columns = [c for c in DIMENSIONS if c in group_by]
    out = []
    for record in records:
        counts = [int(v or 0) for v in record[len(columns) :]]
        if not columns and not any(counts):
            continue
        row = UsageRow()
        for name, value in zip(columns, record, strict=False):
            setattr(row, name, value)
        row.turns, row.errors, row.input_tokens, row.output_tokens = counts
        out.append(row)
    return out


def _values(row: UsageRow) -> tuple[Any, ...]:
    return (
        row.tenant_id,
        row.day,
        row.user_id,
        row.agent,
        row.model,
        row.turns,
        row.errors,
        row.input_tokens,
        row.output_tokens,
    )


def _unfenced(values: tuple[Any, ...], fenced: set[tuple[str, str]]) -> tuple[Any, ...]:
    """A row's values, its user replaced by ``(erased)`` if the user is fenced."""
    if (values[0], values[2]) in fenced:
        return (values[0], values[1], ERASED_USER, *values[3:])
    return values


class SQLiteUsageLedger:
    """Usage in the SQLite store's file, written through a connection of its own."""

    shared = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(_TABLE.format(int="INTEGER"))
        conn.execute(_INDEX)
        for statement in _BATCHES:
            conn.execute(statement.format(real="REAL"))
        conn.execute(_ERASURES.format(real="REAL"))
        return conn

    async def _run(self, job: Any) -> Any:
        async with self._lock:  # one connection: one job at a time
            try:
                if self._conn is None:
                    self._conn = await asyncio.to_thread(self._connect)
                return await asyncio.to_thread(job, self._conn)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite usage ledger failed: {exc}") from exc

    async def open(self) -> None:
        await self._run(lambda conn: None)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        values = [_values(r) for r in rows]

        def write(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                new = conn.execute(
                    "INSERT OR IGNORE INTO usage_batches (id, at) VALUES (?, ?)", (batch, now)
                ).rowcount
                if new:
                    fenced = set(
                        conn.execute(
                            "SELECT tenant_id, user_id FROM usage_erasures WHERE until > ?", (now,)
                        ).fetchall()
                    )
                    conn.executemany(UPSERT, [_unfenced(v, fenced) for v in values])
                    conn.execute(
                        "DELETE FROM usage_batches WHERE at < ?", (now - BATCH_DAYS * 86_400,)
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        statement, params = select(since, until, tenant_id, user_id, group_by)
        records = await self._run(lambda conn: conn.execute(statement, params).fetchall())
        return _rows(records, group_by)

    async def erase_user(self, *, tenant_id: str, user_id: str) -> None:
        if user_id == ERASED_USER:
            return

        def erase(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(FORGET_FENCES.format(now="?1"), (now,))
                conn.execute(FENCE.format(until="?3"), (tenant_id, user_id, now + ERASURE_FENCE))
                conn.execute(FOLD_USER, (tenant_id, user_id, ERASED_USER))
                conn.execute(DELETE_USER, (tenant_id, user_id))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(erase)


class PostgresUsageLedger:
    """Usage in the PostgreSQL store's database (its own small pool)."""

    shared = True

    def __init__(self, url: str, *, max_size: int = 2, migrate: bool | None = None) -> None:
        from agenthost.stores.postgres import LazyPool, check_schema, parse_url

        self.dsn, options = parse_url(url)
        self.schema = check_schema(options.get("schema"))
        wanted = options.get("migrate", "true").lower() not in ("0", "false", "no")
        self.migrate = wanted if migrate is None else migrate
        self.max_size = max_size
        self._pool = LazyPool(
            self.dsn,
            schema=self.schema,
            max_size=max_size,
            setup=self._create if self.migrate else None,
            transaction=True,
            command_timeout=30.0,
        )
        self._flushes = 0

    async def _create(self, conn: Any) -> None:
        from agenthost.stores.postgres import advisory_key

        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(f"usage:{self.schema}"))
        if self.schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(_TABLE.format(int="BIGINT"))
        await conn.execute(_INDEX)
        for statement in _BATCHES:
            await conn.execute(statement.format(real="DOUBLE PRECISION"))
        await conn.execute(_ERASURES.format(real="DOUBLE PRECISION"))

    async def _ensure_pool(self) -> Any:
        return await self._pool.get()

    async def open(self) -> None:
        await self._pool.get()

    async def close(self) -> None:
        await self._pool.close()

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        from agenthost.stores.postgres import call

        pool = await self._ensure_pool()
        ordered = sorted(rows, key=lambda r: _values(r)[:5])
        columns = list(zip(*(_values(r) for r in ordered), strict=True))
        await call(pool, lambda conn: conn.execute(UPSERT_MANY, *columns, batch, ERASED_USER))
        self._flushes += 1
        if self._flushes % 600 == 0:  # now and then: forget old batch ids
            await call(pool, lambda conn: conn.execute(FORGET_BATCHES, BATCH_DAYS * 86_400))

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        from agenthost.stores.postgres import call

        pool = await self._ensure_pool()
        statement, params = select(since, until, tenant_id, user_id, group_by)
        records = await call(pool, lambda conn: conn.fetch(sql.to_postgres(statement), *params))
        return _rows(records, group_by)

    async def erase_user(self, *, tenant_id: str, user_id: str) -> None:
        from agenthost.stores.postgres import call

        if user_id == ERASED_USER:
            return
        pool = await self._ensure_pool()
        clock = "extract(epoch FROM clock_timestamp())"

        async def erase(conn: Any) -> None:
            await conn.execute("LOCK TABLE usage_daily IN SHARE ROW EXCLUSIVE MODE")
            await conn.execute(FORGET_FENCES.format(now=clock))
            fence = FENCE.format(until=f"{clock} + ?3")
            await conn.execute(sql.to_postgres(fence), tenant_id, user_id, ERASURE_FENCE)
            await conn.execute(sql.to_postgres(FOLD_USER), tenant_id, user_id, ERASED_USER)
            await conn.execute(sql.to_postgres(DELETE_USER), tenant_id, user_id)

        await call(pool, erase, transaction=True)
