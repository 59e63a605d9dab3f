"""Long-term memory in PostgreSQL: a ``memories`` table with a ``tsvector`` and a GIN index.

The ``search`` column holds the owner's token and the memory's terms (literal
lexemes, see :mod:`agenthost.stores.search`); a query is ``owner & (t1 | t2 …)``,
so the GIN index only ever yields one user's memories, ranked by ``ts_rank``.

A fenced write runs in a transaction that first takes a share lock on the
session row at the fence's revision. An erasure deletes the session rows before
the memories, so it either waits for that transaction (and then deletes what it
wrote) or has already removed the row (and the write is refused).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from agenthost.errors import Conflict, QuotaExceeded
from agenthost.stores import search, sql
from agenthost.stores.base import MemoryFence, MemoryRecord

T = TypeVar("T")
Connection = Any  # asyncpg ships no type stubs

MIGRATION = """
DROP TABLE IF EXISTS user_memory;
CREATE TABLE summaries (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    version BIGINT NOT NULL, text TEXT NOT NULL, from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL, model TEXT, error TEXT,
    PRIMARY KEY (tenant_id, user_id, session_id, version)
);
CREATE TABLE memories (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, memory_id TEXT NOT NULL,
    text TEXT NOT NULL, kind TEXT, tags JSONB NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    session_id TEXT, run_id TEXT, revision BIGINT NOT NULL, embedding BYTEA,
    search TSVECTOR NOT NULL,
    PRIMARY KEY (tenant_id, user_id, memory_id)
);
-- a user's memories, newest first (listing, counting)
CREATE INDEX memories_created ON memories (tenant_id, user_id, created_at);
-- search: the owner's token is in every vector, so a query walks one user's entries;
-- no pending list (fastupdate): a read never scans unsorted recent inserts
CREATE INDEX memories_search ON memories USING GIN (search) WITH (fastupdate = off);
"""

FENCE = "SELECT revision FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND session_id = $3"
FENCE += " FOR SHARE"
INSERT = sql.to_postgres(
    sql.INSERT_MEMORY.replace(", embedding)", ", embedding, search)").replace(
        "?12)", "?12, ?13::tsvector)"
    )
)
UPDATE = sql.to_postgres(
    sql.UPDATE_MEMORY.replace("embedding = ?9", "embedding = ?9, search = ?11::tsvector")
)
DELETE = sql.to_postgres(sql.DELETE_MEMORY)
LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
COUNT = sql.to_postgres(sql.COUNT_MEMORIES)
SELECT_ONE = sql.to_postgres(sql.select_memory())
LIST = {e: sql.to_postgres(sql.list_memories(e)) for e in (False, True)}
SEARCH = {
    e: f"""
SELECT ts_rank(search, $3::tsquery) AS score, {sql.memory_columns(e)}
FROM memories WHERE tenant_id = $1 AND user_id = $2 AND search @@ $3::tsquery
ORDER BY {sql.SEARCH_ORDER} LIMIT $4
"""
    for e in (False, True)
}


def _record(row: Any) -> MemoryRecord:
    return sql.memory_from_row(row, list(row[5] or ()))


def _vector(record: MemoryRecord) -> bytes | None:
    return None if record.embedding is None else search.pack_vector(record.embedding)


def _tsvector(record: MemoryRecord) -> str:
    document = search.document_terms(record.text, record.kind, record.tags)
    return search.tsvector_text(search.owner_token(record.tenant_id, record.user_id), document)


async def _check(conn: Connection, fence: MemoryFence | None) -> None:
    if fence is None:
        return
    k = fence.key
    revision = await conn.fetchval(FENCE, k.tenant_id, k.user_id, k.session_id)
    if revision != fence.revision:
        raise Conflict(f"session {k} changed since revision {fence.revision}")


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class PostgresMemories:
    """The memory half of :class:`~agenthost.stores.postgres.PostgresStore`."""

    async def _call(
        self, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        """Run ``fn`` on a pooled connection (the store's)."""
        raise NotImplementedError

    async def add_memory(
        self, record: MemoryRecord, *, fence: MemoryFence | None = None, cap: int | None = None
    ) -> None:
        args = (
            record.memory_id,
            record.tenant_id,
            record.user_id,
            record.text,
            record.kind,
            record.tags,
            record.created_at,
            record.updated_at,
            record.session_id,
            record.run_id,
            record.revision,
            _vector(record),
            _tsvector(record),
        )

        async def work(conn: Connection) -> None:
            await _check(conn, fence)
            if cap is not None:  # one adder per user at a time, so the count is exact
                await conn.execute(LOCK_OWNER, search.owner_token(*args[1:3]))
            if cap is not None and await conn.fetchval(COUNT, *args[1:3]) >= cap:
                raise QuotaExceeded(f"this user has {cap} memories, the most allowed")
            try:
                await conn.execute(INSERT, *args)
            except asyncpg.UniqueViolationError:
                raise Conflict(f"memory {record.memory_id!r} exists already") from None

        await self._call(work, transaction=True)

    async def replace_memory(
        self, record: MemoryRecord, *, base_revision: int, fence: MemoryFence | None = None
    ) -> bool:
        args = (
            record.tenant_id,
            record.user_id,
            record.memory_id,
            record.text,
            record.kind,
            record.tags,
            record.updated_at,
            record.revision,
            _vector(record),
            base_revision,
            _tsvector(record),
        )

        async def work(conn: Connection) -> bool:
            await _check(conn, fence)
            return _count(await conn.execute(UPDATE, *args)) == 1

        return await self._call(work, transaction=True)

    async def delete_memory(
        self, tenant_id: str, user_id: str, memory_id: str, *, fence: MemoryFence | None = None
    ) -> bool:
        async def work(conn: Connection) -> bool:
            await _check(conn, fence)
            return _count(await conn.execute(DELETE, tenant_id, user_id, memory_id)) == 1

        return await self._call(work, transaction=fence is not None)

    async def get_memory(self, tenant_id: str, user_id: str, memory_id: str) -> MemoryRecord | None:
        row = await self._call(lambda c: c.fetchrow(SELECT_ONE, tenant_id, user_id, memory_id))
        return _record(row) if row is not None else None

    async def list_memories(
        self,
        tenant_id: str,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        embeddings: bool = False,
    ) -> list[MemoryRecord]:
        query = LIST[embeddings]
        rows = await self._call(lambda c: c.fetch(query, tenant_id, user_id, limit, offset))
        return [_record(r) for r in rows]

    async def count_memories(self, tenant_id: str, user_id: str) -> int:
        return int(await self._call(lambda c: c.fetchval(COUNT, tenant_id, user_id)))

    async def search_memories(
        self,
        tenant_id: str,
        user_id: str,
        terms: Sequence[str],
        *,
        limit: int,
        embeddings: bool = False,
    ) -> list[tuple[MemoryRecord, float]]:
        if not terms or limit < 1:
            return []
        query = search.tsquery_text(search.owner_token(tenant_id, user_id), terms)
        statement = SEARCH[embeddings]
        rows = await self._call(lambda c: c.fetch(statement, tenant_id, user_id, query, limit))
        return [(_record(r[1:]), float(r[0])) for r in rows]


async def delete_scope(conn: Connection, where: str, params: Sequence[str]) -> None:
    """Delete the memories of a tenant/user scope (``where`` from ``sql.scope_filter``)."""
    await conn.execute(f"DELETE FROM memories{sql.to_postgres(where)}", *params)
