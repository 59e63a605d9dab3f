"""SQLiteStore: the embedded default.

One connection per process does the writing. With ``durability="normal"`` (the
default: WAL, ``synchronous=NORMAL``) a write is a short transaction run inline
on the event loop: it reaches the OS before the call returns, so nothing
acknowledged is lost if the process is killed; the last commits may be lost on
power failure. With ``durability="full"`` every commit is fsynced, by a writer
thread that commits whatever batches are waiting together (group commit), so
concurrent turns share one fsync.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from agenthost.errors import Conflict, StoreUnavailable
from agenthost.keys import SessionKey
from agenthost.messages import (
    Message,
    Usage,
    decode_json,
    decode_message,
    encode_json,
    encode_message,
)
from agenthost.stores import sql
from agenthost.stores.base import RunRecord, SessionRecord, Snapshot, WriteBatch, check_scope

T = TypeVar("T")
Durability = Literal["normal", "full"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, message_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL DEFAULT '{}',
    pending TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (tenant_id, user_id, session_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at);
CREATE TABLE IF NOT EXISTS messages (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    seq INTEGER NOT NULL, run_id TEXT, role TEXT NOT NULL, created_at REAL NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tenant_id, user_id, session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL,
    session_id TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, error TEXT, usage TEXT
);
CREATE INDEX IF NOT EXISTS runs_session ON runs (tenant_id, user_id, session_id, started_at);
CREATE INDEX IF NOT EXISTS runs_running ON runs (tenant_id, user_id, session_id)
    WHERE status = 'running';
CREATE TABLE IF NOT EXISTS user_memory (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
"""
SCHEMA_VERSION = 1


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _apply(conn: sqlite3.Connection, batch: WriteBatch) -> None:
    k = batch.key
    ident = (k.tenant_id, k.user_id, k.session_id)
    if batch.messages:
        try:
            conn.executemany(
                sql.INSERT_MESSAGE,
                [
                    (*ident, m.seq, m.run_id, m.role, m.created_at, encode_message(m))
                    for m in batch.messages
                ],
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"session {k} has messages past seq {batch.base_seq}") from None
    conn.execute(
        sql.UPSERT_SESSION,
        (
            *ident,
            batch.now,
            batch.messages[-1].seq if batch.messages else batch.base_seq,
            len(batch.messages),
            None if batch.state is None else encode_json(batch.state),
            None if batch.config is None else encode_json(batch.config),
            None if batch.pending is None else encode_json(batch.pending),
        ),
    )
    run = batch.run
    if run is not None:
        conn.execute(
            sql.UPSERT_RUN,
            (
                run.run_id,
                *ident,
                run.status,
                run.started_at,
                run.finished_at,
                run.error,
                encode_json(run.usage.to_dict()),
            ),
        )


class _GroupCommitter:
    """A writer thread: takes every job waiting, runs each in a savepoint, commits once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="agenthost-sqlite-writer", daemon=True
        )
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return future

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        conn = self._conn
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            results: list[tuple[Any, BaseException | None]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for fn, _future, _loop in jobs:
                    conn.execute("SAVEPOINT job")
                    try:
                        results.append((fn(conn), None))
                        conn.execute("RELEASE job")
                    except BaseException as exc:  # reported to that job's caller only
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                        results.append((None, exc))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                failure = StoreUnavailable(f"sqlite commit failed: {exc}")
                results = [(None, failure)] * len(jobs)
            for (_fn, future, loop), (value, error) in zip(jobs, results, strict=True):
                loop.call_soon_threadsafe(_settle, future, value, error)
            if stop:
                return


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _record(key: SessionKey, row: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(
        key,
        row[0],
        row[1],
        row[2],
        row[3],
        decode_json(row[4], {}),
        decode_json(row[5], {}),
        decode_json(row[6], []),
    )


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    usage = decode_json(row[5], {})
    return RunRecord(
        run_id=row[0],
        key=SessionKey(row[6], row[7], row[8]),
        status=row[1],
        started_at=row[2],
        finished_at=row[3],
        error=row[4],
        usage=Usage(
            usage.get("input_tokens", 0), usage.get("output_tokens", 0), usage.get("requests", 0)
        ),
    )


class SQLiteStore:
    def __init__(
        self, path: str | Path = "agenthost.db", *, durability: Durability = "normal"
    ) -> None:
        if durability not in ("normal", "full"):
            raise ValueError("durability must be 'normal' or 'full'")
        self.path = str(path)
        self.durability = durability
        self._conn: sqlite3.Connection | None = None
        self._writer: _GroupCommitter | None = None

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(self.path, "NORMAL")
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open sqlite database {self.path}: {exc}") from exc
        self._conn = conn
        if self.durability == "full":
            self._writer = _GroupCommitter(_connect(self.path, "FULL"))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("SQLiteStore is not open")
        return self._conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is not None:
            return await self._writer.submit(fn)
        try:
            return _transaction(self.conn, fn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite write failed: {exc}") from exc

    async def ping(self) -> None:
        self.conn.execute("SELECT 1").fetchone()

    async def write(self, batch: WriteBatch) -> None:
        await self._write(lambda conn: _apply(conn, batch))

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        ident = (key.tenant_id, key.user_id, key.session_id)
        conn = self.conn
        row = conn.execute(sql.SELECT_SESSION, ident).fetchone()
        if row is None:
            return None
        rows = conn.execute(sql.SELECT_WINDOW, (*ident, window)).fetchall()
        running = [r[0] for r in conn.execute(sql.SELECT_RUNNING, ident)]
        return Snapshot(_record(key, row), [decode_message(r[0]) for r in reversed(rows)], running)

    async def last_seq(self, key: SessionKey) -> int:
        row = self.conn.execute(
            sql.SELECT_LAST_SEQ, (key.tenant_id, key.user_id, key.session_id)
        ).fetchone()
        return int(row[0]) if row else 0

    async def messages(
        self, key: SessionKey, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Message]:
        rows = self.conn.execute(
            sql.SELECT_MESSAGES,
            (key.tenant_id, key.user_id, key.session_id, after_seq, -1 if limit is None else limit),
        ).fetchall()
        return [decode_message(r[0]) for r in rows]

    async def sessions(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        where, params = sql.scope_filter(tenant_id, user_id, None)
        n = len(params)
        rows = self.conn.execute(
            f"SELECT {sql.SESSION_COLUMNS} FROM sessions{where} "
            f"ORDER BY updated_at DESC LIMIT ?{n + 1} OFFSET ?{n + 2}",
            (*params, -1 if limit is None else limit, offset),
        ).fetchall()
        return [_record(SessionKey(r[0], r[1], r[2]), r[3:]) for r in rows]

    async def count_sessions(
        self, *, tenant_id: str | None = None, user_id: str | None = None
    ) -> int:
        where, params = sql.scope_filter(tenant_id, user_id, None)
        row = self.conn.execute(f"SELECT COUNT(*) FROM sessions{where}", params).fetchone()
        return int(row[0])

    async def delete(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        check_scope(tenant_id, user_id, session_id)
        where, params = sql.scope_filter(tenant_id, user_id, session_id)

        def work(conn: sqlite3.Connection) -> int:
            for table in sql.TABLES:
                cursor = conn.execute(f"DELETE FROM {table}{where}", params)
            if session_id is None:
                memory_where, memory_params = sql.scope_filter(tenant_id, user_id, None)
                conn.execute(f"DELETE FROM user_memory{memory_where}", memory_params)
            return cursor.rowcount  # the last table deleted from is sessions

        return await self._write(work)

    async def runs(self, key: SessionKey, *, limit: int = 50) -> list[RunRecord]:
        rows = self.conn.execute(
            sql.SELECT_RUNS, (key.tenant_id, key.user_id, key.session_id, limit)
        ).fetchall()
        return [_run_record(r) for r in rows]

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute(sql.SELECT_RUN, (run_id,)).fetchone()
        return _run_record(row) if row else None

    async def delete_idle(self, *, before: float, limit: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            keys = conn.execute(sql.SELECT_IDLE, (before, limit)).fetchall()
            for ident in keys:
                for table in sql.TABLES:
                    conn.execute(f"DELETE FROM {table} WHERE {sql.KEY}", ident)
            return len(keys)

        return await self._write(work)

    async def get_memory(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        row = self.conn.execute(sql.SELECT_MEMORY, (tenant_id, user_id)).fetchone()
        return decode_json(row[0], {}) if row else {}

    async def set_memory(self, tenant_id: str, user_id: str, memory: dict[str, Any]) -> None:
        data = encode_json(memory)
        await self._write(lambda conn: conn.execute(sql.UPSERT_MEMORY, (tenant_id, user_id, data)))
