"""Upgrading a store made before memory records: SQLite schema 2 -> 3, PostgreSQL 4 -> 5.

The old per-user JSON blob (``user_memory``, which nothing wrote) goes; sessions stay;
memories and summaries work at once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from agenthost.keys import SessionKey
from agenthost.stores import SQLiteStore, WriteBatch
from agenthost.stores.base import MemoryRecord, SessionSummary
from agenthost.stores.postgres import MIGRATIONS, PostgresStore
from agenthost.stores.search import query_terms
from agenthost.stores.sqlite import SCHEMA_VERSION
from support.services import drop_postgres_schema, postgres_url, unique

KEY = SessionKey("acme", "alice", "s1")
VERSION_2 = """
CREATE TABLE sessions (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, message_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL DEFAULT '{}',
    pending TEXT NOT NULL DEFAULT '[]', revision INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, user_id, session_id)
) WITHOUT ROWID;
CREATE TABLE messages (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    seq INTEGER NOT NULL, run_id TEXT, role TEXT NOT NULL, created_at REAL NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tenant_id, user_id, session_id, seq)
) WITHOUT ROWID;
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL,
    session_id TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, error TEXT, usage TEXT, request_id TEXT
);
CREATE TABLE user_memory (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
INSERT INTO sessions (tenant_id, user_id, session_id, created_at, updated_at, state, revision)
VALUES ('acme', 'alice', 's1', 1.0, 2.0, '{"kept": true}', 7);
INSERT INTO user_memory VALUES ('acme', 'alice', '{}');
PRAGMA user_version = 2;
"""


async def check_upgraded(store: SQLiteStore | PostgresStore) -> None:
    snapshot = await store.load(KEY, window=5)
    assert snapshot is not None and snapshot.session.state == {"kept": True}
    assert snapshot.session.summary is None
    await store.add_memory(MemoryRecord("mem_1", "acme", "alice", "likes tea", revision=1))
    hits = await store.search_memories("acme", "alice", query_terms("tea"), limit=5)
    assert [h.memory_id for h, _ in hits] == ["mem_1"]
    summary = SessionSummary(1, "- a summary", 1, 0, 3.0)
    batch = WriteBatch(KEY, 3.0, 0, (), base_revision=7, summary=summary)
    await store.write(batch)
    assert await store.summaries(KEY) == [summary]


async def test_sqlite_schema_2_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_2)
    store = SQLiteStore(path)
    await store.open()
    try:
        await check_upgraded(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "user_memory" not in tables
        assert {"memories", "memories_fts", "summaries"} <= tables


async def test_postgres_migration_5_upgrades_a_version_4_schema() -> None:
    base = postgres_url()
    schema = unique("upgrade")
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for migration in MIGRATIONS[:4]:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        await conn.execute(
            "INSERT INTO sessions (tenant_id, user_id, session_id, created_at, updated_at, "
            """state, revision) VALUES ('acme', 'alice', 's1', 1, 2, '{"kept": true}', 7)"""
        )
        await conn.execute("INSERT INTO user_memory VALUES ('acme', 'alice', '{}')")
    finally:
        await conn.close()
    store = PostgresStore(base, schema=schema)
    await store.open()
    try:
        assert await store.applied_migrations() == [1, 2, 3, 4, 5, 6]
        await check_upgraded(store)
    finally:
        await store.close()
        await drop_postgres_schema(base, schema)
