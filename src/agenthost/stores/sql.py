"""SQL shared by the SQLite and PostgreSQL stores.

Statements use SQLite's numbered placeholders (``?1``); :func:`to_postgres`
rewrites them to asyncpg's ``$1``. Only the schema differs per backend.
"""

from __future__ import annotations

import re
from typing import Any

from agenthost.stores.base import MemoryRecord, SessionSummary
from agenthost.stores.search import unpack_vector

KEY = "tenant_id = ?1 AND user_id = ?2 AND session_id = ?3"

# Session writes. Parameters: ?1-?3 the key, ?4 now, ?5 the new last seq, ?6 messages
# appended, ?7 state, ?8 config, ?9 pending (NULL: unchanged), ?10 the new revision,
# ?11 the revision the writer's copy is at (UPDATE_SESSION only).
_SESSION_COLUMNS_IN = (
    "tenant_id, user_id, session_id, created_at, updated_at, last_seq, message_count, "
    "state, config, pending, revision"
)
_SESSION_VALUES = (
    "?1, ?2, ?3, ?4, ?4, ?5, ?6, COALESCE(?7, '{}'), COALESCE(?8, '{}'), COALESCE(?9, '[]'), ?10"
)
_SESSION_SET = """updated_at = ?4,
    last_seq = CASE WHEN ?6 > 0 THEN ?5 ELSE sessions.last_seq END,
    message_count = sessions.message_count + ?6,
    state = COALESCE(?7, sessions.state),
    config = COALESCE(?8, sessions.config),
    pending = COALESCE(?9, sessions.pending),
    revision = ?10"""

# A write that must create the session (its writer saw none): fails if it exists.
INSERT_SESSION = f"INSERT INTO sessions ({_SESSION_COLUMNS_IN}) VALUES ({_SESSION_VALUES})"

# The compare-and-set: changes the row only if it is still at the writer's revision.
UPDATE_SESSION = f"UPDATE sessions SET {_SESSION_SET} WHERE {KEY} AND revision = ?11"

# An unchecked write (WriteBatch.base_revision is None).
UPSERT_SESSION = f"""
INSERT INTO sessions ({_SESSION_COLUMNS_IN}) VALUES ({_SESSION_VALUES})
ON CONFLICT (tenant_id, user_id, session_id) DO UPDATE SET {_SESSION_SET}
"""

INSERT_MESSAGE = """
INSERT INTO messages (tenant_id, user_id, session_id, seq, run_id, role, created_at, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
"""

RUN_COLUMNS = (
    "run_id, tenant_id, user_id, session_id, status, started_at, finished_at, error, usage, "
    "request_id"
)
RUN_ON_CONFLICT = (
    "ON CONFLICT (run_id) DO UPDATE SET status = ?5, finished_at = ?7, error = ?8, usage = ?9"
)
UPSERT_RUN = f"""
INSERT INTO runs ({RUN_COLUMNS})
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
{RUN_ON_CONFLICT}
"""

SELECT_SESSION = f"""
SELECT created_at, updated_at, last_seq, message_count, state, config, pending, revision
FROM sessions WHERE {KEY}
"""

SELECT_REVISION = f"SELECT revision FROM sessions WHERE {KEY}"

SELECT_LAST_SEQ = f"SELECT last_seq FROM sessions WHERE {KEY}"

SELECT_WINDOW = f"""
SELECT data FROM messages WHERE {KEY} AND seq > ?5 ORDER BY seq DESC LIMIT ?4
"""

SELECT_RUNNING = f"SELECT run_id FROM runs WHERE {KEY} AND status = 'running'"

SELECT_MESSAGES = f"""
SELECT data FROM messages WHERE {KEY} AND seq > ?4 ORDER BY seq LIMIT ?5
"""

SELECT_RUNS = f"""
SELECT run_id, status, started_at, finished_at, error, usage, tenant_id, user_id, session_id,
       request_id
FROM runs WHERE {KEY} ORDER BY started_at DESC LIMIT ?4
"""

SELECT_RUN = """
SELECT run_id, status, started_at, finished_at, error, usage, tenant_id, user_id, session_id,
       request_id
FROM runs WHERE run_id = ?1
"""

SESSION_COLUMNS = (
    "tenant_id, user_id, session_id, created_at, updated_at, last_seq, message_count, "
    "state, config, pending, revision"
)

SELECT_IDLE = """
SELECT tenant_id, user_id, session_id FROM sessions WHERE updated_at < ?1
ORDER BY updated_at LIMIT ?2
"""

# -- session summaries (append-only; the newest is the session's) ------------------------

SUMMARY_COLUMNS = "version, text, from_seq, to_seq, created_at, model, error"
INSERT_SUMMARY = f"""
INSERT INTO summaries (tenant_id, user_id, session_id, {SUMMARY_COLUMNS})
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
"""
SELECT_SUMMARY = (
    f"SELECT {SUMMARY_COLUMNS} FROM summaries WHERE {KEY} ORDER BY version DESC LIMIT 1"
)
SELECT_SUMMARIES = f"SELECT {SUMMARY_COLUMNS} FROM summaries WHERE {KEY} ORDER BY version"

# -- long-term memory ---------------------------------------------------------------

OWNER = "tenant_id = ?1 AND user_id = ?2"
MEMORY_COLUMNS = (
    "memory_id, tenant_id, user_id, text, kind, tags, created_at, updated_at, session_id, "
    "run_id, revision"
)
"""A memory row as :func:`memory_row` reads it; ``, embedding`` may follow."""
MEMORY_ORDER = "created_at DESC, memory_id DESC"
SEARCH_ORDER = "score DESC, updated_at DESC, memory_id"
INSERT_MEMORY = f"""
INSERT INTO memories ({MEMORY_COLUMNS}, embedding)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
"""
# ?1-?3 owner and id, ?4 text, ?5 kind, ?6 tags, ?7 updated_at, ?8 revision, ?9 embedding,
# ?10 the revision the writer read
UPDATE_MEMORY = f"""
UPDATE memories SET text = ?4, kind = ?5, tags = ?6, updated_at = ?7, revision = ?8,
    embedding = ?9
WHERE {OWNER} AND memory_id = ?3 AND revision = ?10
"""
DELETE_MEMORY = f"DELETE FROM memories WHERE {OWNER} AND memory_id = ?3"
COUNT_MEMORIES = f"SELECT COUNT(*) FROM memories WHERE {OWNER}"


def memory_columns(embeddings: bool, table: str = "") -> str:
    prefix = f"{table}." if table else ""
    columns = [c.strip() for c in MEMORY_COLUMNS.split(",")]
    if embeddings:
        columns.append("embedding")
    return ", ".join(prefix + c for c in columns)


def select_memory(embeddings: bool = False) -> str:
    return f"SELECT {memory_columns(embeddings)} FROM memories WHERE {OWNER} AND memory_id = ?3"


def list_memories(embeddings: bool) -> str:
    return (
        f"SELECT {memory_columns(embeddings)} FROM memories WHERE {OWNER} "
        f"ORDER BY {MEMORY_ORDER} LIMIT ?3 OFFSET ?4"
    )


def memory_from_row(row: Any, tags: list[str]) -> MemoryRecord:
    """A memory from a row in :data:`MEMORY_COLUMNS` order (``tags`` already decoded)."""
    return MemoryRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        tags,
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        unpack_vector(row[11]) if len(row) > 11 else None,
    )


def summary_from_row(row: Any) -> SessionSummary:
    """A summary from a row in :data:`SUMMARY_COLUMNS` order."""
    return SessionSummary(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


TABLES = ("messages", "runs", "summaries", "sessions")
"""Every table keyed by session; ``sessions`` last (its deleted count is the answer)."""


def scope_filter(
    tenant_id: str | None, user_id: str | None, session_id: str | None, *, first: int = 1
) -> tuple[str, list[str]]:
    """A WHERE clause (possibly empty) and its parameters for a tenant/user/session scope."""
    clauses: list[str] = []
    params: list[str] = []
    for column, value in (
        ("tenant_id", tenant_id),
        ("user_id", user_id),
        ("session_id", session_id),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} = ?{first + len(params) - 1}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_PLACEHOLDER = re.compile(r"\?(\d+)")


def to_postgres(sql: str) -> str:
    """Rewrite ``?N`` placeholders to ``$N``."""
    return _PLACEHOLDER.sub(r"$\1", sql)
