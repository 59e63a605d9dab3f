"""Long-term memory in SQLite: a ``memories`` table and its FTS5 index.

``memories_fts`` holds, for each memory (rowid = ``memories.rid``), its owner's
token and its terms (see :mod:`agenthost.stores.search`); a search matches the
owner *and* any query term, so FTS5 walks one user's postings only, and ranks
with ``bm25``. Writes go through the store's single writing connection, each in
its own transaction: a fenced write checks the session's revision in the same
transaction as it writes, so it cannot slip past an erasure.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agenthost.errors import Conflict, QuotaExceeded
from agenthost.messages import decode_json, encode_json
from agenthost.stores import search, sql
from agenthost.stores.base import MemoryFence, MemoryRecord

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    rid INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, memory_id TEXT NOT NULL,
    text TEXT NOT NULL, kind TEXT, tags TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    session_id TEXT, run_id TEXT, revision INTEGER NOT NULL, embedding BLOB,
    UNIQUE (tenant_id, user_id, memory_id)
);
CREATE INDEX IF NOT EXISTS memories_created ON memories (tenant_id, user_id, created_at);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    owner, body, tokenize = "unicode61 remove_diacritics 0"
);
"""

_SEARCH = f"""
SELECT -bm25(memories_fts, 0.0, 1.0) AS score, {sql.memory_columns(False, "m")}{{embedding}}
FROM memories_fts JOIN memories AS m ON m.rid = memories_fts.rowid
WHERE memories_fts MATCH ?1 AND m.tenant_id = ?2 AND m.user_id = ?3
ORDER BY score DESC, m.updated_at DESC, m.memory_id LIMIT ?4
"""
SEARCH = {False: _SEARCH.format(embedding=""), True: _SEARCH.format(embedding=", m.embedding")}
_INSERT_FTS = "INSERT INTO memories_fts (rowid, owner, body) VALUES (?1, ?2, ?3)"


def _record(row: Any) -> MemoryRecord:
    return sql.memory_from_row(row, decode_json(row[5], []))


def _body(record: MemoryRecord) -> str:
    return " ".join(search.document_terms(record.text, record.kind, record.tags))


def _vector(record: MemoryRecord) -> bytes | None:
    return None if record.embedding is None else search.pack_vector(record.embedding)


def _check(conn: sqlite3.Connection, fence: MemoryFence | None) -> None:
    if fence is None:
        return
    k = fence.key
    row = conn.execute(sql.SELECT_REVISION, (k.tenant_id, k.user_id, k.session_id)).fetchone()
    if row is None or row[0] != fence.revision:
        raise Conflict(f"session {k} changed since revision {fence.revision}")


def delete_scope(conn: sqlite3.Connection, where: str, params: Sequence[str]) -> None:
    """Delete the memories (and their index entries) of a tenant/user scope."""
    conn.execute(
        f"DELETE FROM memories_fts WHERE rowid IN (SELECT rid FROM memories{where})", params
    )
    conn.execute(f"DELETE FROM memories{where}", params)


class SQLiteMemories:
    """The memory half of :class:`~agenthost.stores.sqlite.SQLiteStore`."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The reading connection (the store's)."""
        raise NotImplementedError

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a transaction of the writing connection (the store's)."""
        raise NotImplementedError

    async def add_memory(
        self, record: MemoryRecord, *, fence: MemoryFence | None = None, cap: int | None = None
    ) -> None:
        owner = (record.tenant_id, record.user_id)

        def work(conn: sqlite3.Connection) -> None:
            _check(conn, fence)
            if cap is not None and conn.execute(sql.COUNT_MEMORIES, owner).fetchone()[0] >= cap:
                raise QuotaExceeded(f"this user has {cap} memories, the most allowed")
            try:
                cursor = conn.execute(
                    sql.INSERT_MEMORY,
                    (
                        record.memory_id,
                        *owner,
                        record.text,
                        record.kind,
                        encode_json(record.tags),
                        record.created_at,
                        record.updated_at,
                        record.session_id,
                        record.run_id,
                        record.revision,
                        _vector(record),
                    ),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"memory {record.memory_id!r} exists already") from None
            token = search.owner_token(*owner)
            conn.execute(_INSERT_FTS, (cursor.lastrowid, token, _body(record)))

        await self._write(work)

    async def replace_memory(
        self, record: MemoryRecord, *, base_revision: int, fence: MemoryFence | None = None
    ) -> bool:
        owner = (record.tenant_id, record.user_id)

        def work(conn: sqlite3.Connection) -> bool:
            _check(conn, fence)
            row = conn.execute(
                sql.UPDATE_MEMORY + " RETURNING rid",
                (
                    *owner,
                    record.memory_id,
                    record.text,
                    record.kind,
                    encode_json(record.tags),
                    record.updated_at,
                    record.revision,
                    _vector(record),
                    base_revision,
                ),
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM memories_fts WHERE rowid = ?1", (row[0],))
            conn.execute(_INSERT_FTS, (row[0], search.owner_token(*owner), _body(record)))
            return True

        result: bool = await self._write(work)
        return result

    async def delete_memory(
        self, tenant_id: str, user_id: str, memory_id: str, *, fence: MemoryFence | None = None
    ) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            _check(conn, fence)
            row = conn.execute(
                sql.DELETE_MEMORY + " RETURNING rid", (tenant_id, user_id, memory_id)
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM memories_fts WHERE rowid = ?1", (row[0],))
            return True

        result: bool = await self._write(work)
        return result

    async def get_memory(self, tenant_id: str, user_id: str, memory_id: str) -> MemoryRecord | None:
        row = self.conn.execute(sql.select_memory(), (tenant_id, user_id, memory_id)).fetchone()
        return _record(row) if row else None

    async def list_memories(
        self,
        tenant_id: str,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        embeddings: bool = False,
    ) -> list[MemoryRecord]:
        rows = self.conn.execute(
            sql.list_memories(embeddings),
            (tenant_id, user_id, -1 if limit is None else limit, offset),
        ).fetchall()
        return [_record(r) for r in rows]

    async def count_memories(self, tenant_id: str, user_id: str) -> int:
        return int(self.conn.execute(sql.COUNT_MEMORIES, (tenant_id, user_id)).fetchone()[0])

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
        query = search.fts5_query(search.owner_token(tenant_id, user_id), terms)
        rows = self.conn.execute(SEARCH[embeddings], (query, tenant_id, user_id, limit))
        return [(_record(r[1:]), float(r[0])) for r in rows]
