"""SQLiteStore: the embedded default.

One connection per process does the writing, and writes are group-committed:
the batches that turns submit together share one transaction (one batch's
failure still fails only its own caller: see ``_commit_jobs``). With
``durability="normal"`` (the default: WAL, ``synchronous=NORMAL``) the commit
runs on the event loop's thread, on the loop's next pass after the first batch
arrived: it reaches the OS before any of its callers resumes, so nothing
acknowledged is lost if the process is killed; the last commits may be lost on
power failure. With ``durability="full"`` every commit is fsynced, by a writer
thread that commits whatever batches are waiting together, so concurrent turns
share one fsync.

WAL checkpoints (copying the log back into the database file) run on a thread
of their own rather than inside a turn's commit (see ``_Checkpointer``).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    decode_json,
    decode_message,
    encode_json,
    encode_message,
)
from agenthost.stores import runlog_sqlite, sql, sqlite_memory
from agenthost.stores.base import (
    RunRecord,
    SessionRecord,
    SessionSummary,
    Snapshot,
    WriteBatch,
    check_scope,
    pending_from_json,
    pending_to_json,
)

T = TypeVar("T")
Durability = Literal["normal", "full"]

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS sessions (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, message_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL DEFAULT '{}',
    pending TEXT NOT NULL DEFAULT '[]', revision INTEGER NOT NULL DEFAULT 1,
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
    finished_at REAL, error TEXT, usage TEXT, request_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_session ON runs (tenant_id, user_id, session_id, started_at);
CREATE INDEX IF NOT EXISTS runs_running ON runs (tenant_id, user_id, session_id)
    WHERE status = 'running';
CREATE TABLE IF NOT EXISTS summaries (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    version INTEGER NOT NULL, text TEXT NOT NULL, from_seq INTEGER NOT NULL,
    to_seq INTEGER NOT NULL, created_at REAL NOT NULL, model TEXT, error TEXT,
    PRIMARY KEY (tenant_id, user_id, session_id, version)
) WITHOUT ROWID;
"""
    + sqlite_memory.SCHEMA
)
SCHEMA_VERSION = 4
# What a database made by an older version lacks (``PRAGMA user_version`` says which);
# tables that are new in a version are made by ``SCHEMA`` itself.
UPGRADES = {
    2: (
        "ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE runs ADD COLUMN request_id TEXT",
    ),
    # memory records replace the per-user JSON blob (which nothing wrote)
    3: ("DROP TABLE IF EXISTS user_memory",),
    4: (),  # run logs, idempotency keys, cancel requests (runlog_sqlite.SCHEMA)
}


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring an older database up to ``SCHEMA_VERSION``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        fresh = (
            conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sessions'").fetchone()[0]
            == 0
        )
        if not fresh:
            for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in UPGRADES[target]:
                    conn.execute(statement)
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        for statement in runlog_sqlite.SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _apply(conn: sqlite3.Connection, batch: WriteBatch) -> None:
    """One batch: the session row first (its revision check), then messages and run."""
    k = batch.key
    ident = (k.tenant_id, k.user_id, k.session_id)
    pending = batch.pending
    row = (
        *ident,
        batch.now,
        batch.messages[-1].seq if batch.messages else batch.base_seq,
        len(batch.messages),
        None if batch.state is None else encode_json(batch.state),
        None if batch.config is None else encode_json(batch.config),
        None if pending is None else encode_json(pending_to_json(pending)),
        batch.new_revision(),
    )
    base = batch.base_revision
    if base is None:
        conn.execute(sql.UPSERT_SESSION, row)
    elif base == 0:
        try:
            conn.execute(sql.INSERT_SESSION, row)
        except sqlite3.IntegrityError:
            raise Conflict(f"session {k} exists already") from None
    elif conn.execute(sql.UPDATE_SESSION, (*row, base)).rowcount != 1:
        raise Conflict(f"session {k} changed since revision {base}")
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
    summary = batch.summary
    if summary is not None:
        try:
            conn.execute(
                sql.INSERT_SUMMARY,
                (
                    *ident,
                    summary.version,
                    summary.text,
                    summary.from_seq,
                    summary.to_seq,
                    summary.created_at,
                    summary.model,
                    summary.error,
                ),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"session {k} has summary {summary.version} already") from None
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
                run.request_id,
            ),
        )


Job = Callable[[sqlite3.Connection], Any]
Outcome = tuple[Any, BaseException | None]


def _job_error(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(f"sqlite write failed: {exc}")
    return exc


class _Busy(Exception):
    """Another process holds the database's write lock (``BEGIN IMMEDIATE`` found it busy)."""


def _begin(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            raise _Busy(str(exc)) from exc
        raise


def _commit_jobs(conn: sqlite3.Connection, jobs: list[Job]) -> list[Outcome]:
    """Run ``jobs`` in one transaction and commit once; return each job's outcome.

    Jobs run straight through first. If one fails, the transaction is rolled back
    and they run again each in a savepoint, so that the failing job alone is
    rolled back and reported to its caller. A failed commit fails them all.
    Raises ``_Busy``, with nothing done, if the write lock cannot be had.
    """
    try:
        _begin(conn)
        try:
            results: list[Outcome] = [(job(conn), None) for job in jobs]
        except Exception as exc:
            conn.execute("ROLLBACK")
            if len(jobs) == 1:
                return [(None, _job_error(exc))]
            _begin(conn)
            results = [_in_savepoint(conn, job) for job in jobs]
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        failure = StoreUnavailable(f"sqlite commit failed: {exc}")
        return [(None, failure)] * len(jobs)
    return results


def _in_savepoint(conn: sqlite3.Connection, job: Job) -> Outcome:
    conn.execute("SAVEPOINT job")
    try:
        result = job(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return None, _job_error(exc)
    conn.execute("RELEASE job")
    return result, None


class _LoopCommitter:
    """Group commit on the event loop's thread (``durability="normal"``).

    The first job submitted schedules a flush with ``call_soon``; every job
    submitted before the loop gets to it (the other turns that run in the same
    pass of the loop) joins the same transaction. When nothing else is ready to
    run, no other job can join before the flush, so the job commits at once
    instead (this needs asyncio's ready queue; other loops always defer).

    The connection does not wait for another process's write lock inside SQLite
    (that would stop the event loop): a busy flush is retried a little later,
    with whatever else was submitted meanwhile, for up to ``BUSY_TIMEOUT`` seconds.
    """

    BUSY_TIMEOUT = 10.0

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout=0")
        self._conn = conn
        self._jobs: list[tuple[Job, asyncio.Future[Any]]] = []
        self._busy_since: float | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._jobs and loop is not self._loop:
            # left by an event loop that stopped before its flush ran: commit them now
            if self._retry is not None:
                self._retry.cancel()
            self.flush()
        self._loop = loop
        if not self._jobs:
            if not getattr(loop, "_ready", True):
                try:
                    ((value, error),) = _commit_jobs(self._conn, [fn])
                except _Busy:
                    self._jobs.append((fn, future))
                    self._wait(loop)
                    return future
                _settle(future, value, error)
                return future
            loop.call_soon(self.flush)
        self._jobs.append((fn, future))
        return future

    def flush(self) -> None:
        self._retry = None
        jobs, self._jobs = self._jobs, []
        if not jobs:
            return
        try:
            results = _commit_jobs(self._conn, [fn for fn, _future in jobs])
        except _Busy as exc:
            loop = asyncio.get_running_loop()
            if self._busy_since is None:
                self._busy_since = loop.time()
            if loop.time() - self._busy_since < self.BUSY_TIMEOUT:
                self._jobs = jobs + self._jobs
                self._wait(loop)
                return
            results = [(None, StoreUnavailable(f"sqlite write failed: {exc}"))] * len(jobs)
        self._busy_since = None
        for (_fn, future), (value, error) in zip(jobs, results, strict=True):
            _settle(future, value, error)

    def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush again soon: sooner while the wait is young, at most every 5 ms."""
        waited = 0.0 if self._busy_since is None else loop.time() - self._busy_since
        self._retry = loop.call_later(min(0.005, 0.0002 + waited / 4), self.flush)

    def close(self) -> None:
        """Commit what is waiting, letting SQLite itself wait for the lock this time."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        jobs, self._jobs = self._jobs, []
        if jobs:
            self._conn.execute(f"PRAGMA busy_timeout={int(self.BUSY_TIMEOUT * 1000)}")
            try:
                results = _commit_jobs(self._conn, [fn for fn, _future in jobs])
            except _Busy as exc:
                results = [(None, StoreUnavailable(f"sqlite write failed: {exc}"))] * len(jobs)
            for (_fn, future), (value, error) in zip(jobs, results, strict=True):
                _settle(future, value, error)
        self._conn.close()


class _GroupCommitter:
    """A writer thread (``durability="full"``): commits every job waiting at once."""

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

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
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
            try:
                results = _commit_jobs(self._conn, [fn for fn, _future, _loop in jobs])
            except _Busy as exc:  # SQLite waited its busy timeout already
                failure = StoreUnavailable(f"sqlite write failed: {exc}")
                results = [(None, failure)] * len(jobs)
            for (_fn, future, loop), (value, error) in zip(jobs, results, strict=True):
                with contextlib.suppress(RuntimeError):  # that event loop is closed
                    loop.call_soon_threadsafe(_settle, future, value, error)
            if stop:
                return


class _Checkpointer:
    """Copies the WAL back into the database on a thread of its own.

    Kicked every ``EVERY_WRITES`` writes, and after ``IDLE`` seconds without a
    kick if anything was written since its last pass. ``PASSIVE`` checkpoints
    never wait for readers or writers, and the thread spends its time in SQLite,
    outside the GIL, so a turn's commit does not pay for them. Under sustained
    writes the log can only restart once a checkpoint caught up with it, so the
    writing connections keep SQLite's own checkpoint as a safety net at
    ``SAFETY_PAGES``; by then the thread has copied nearly everything.
    """

    EVERY_WRITES = 128
    """Writes between kicks: roughly the thousand pages of log of SQLite's own default."""
    IDLE = 0.5
    SAFETY_PAGES = 10_000

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._wake = threading.Event()
        self._stopping = False
        self.writes = 0  # counted by the writing thread only
        self._kicked_at = 0
        self._thread = threading.Thread(
            target=self._run, name="agenthost-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def wrote(self) -> None:
        self.writes += 1
        if self.writes - self._kicked_at >= self.EVERY_WRITES:
            self._kicked_at = self.writes
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        done = 0
        while True:
            self._wake.wait(self.IDLE)
            self._wake.clear()
            if self._stopping:
                return
            seen = self.writes
            if seen != done:
                done = seen
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled() or future.get_loop().is_closed():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _record(
    key: SessionKey, row: tuple[Any, ...], summary: SessionSummary | None = None
) -> SessionRecord:
    return SessionRecord(
        key,
        row[0],
        row[1],
        row[2],
        row[3],
        decode_json(row[4], {}),
        decode_json(row[5], {}),
        pending_from_json(decode_json(row[6], [])),
        row[7],
        summary,
    )


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    columns = ("run_id", "status", "started_at", "finished_at", "error", "usage")
    data = dict(zip(columns, row, strict=False))
    data.update(
        usage=decode_json(row[5], {}),
        tenant_id=row[6],
        user_id=row[7],
        session_id=row[8],
        request_id=row[9],
    )
    return RunRecord.from_dict(data)


class SQLiteStore(sqlite_memory.SQLiteMemories, runlog_sqlite.SQLiteRunLog):
    def __init__(
        self, path: str | Path = "agenthost.db", *, durability: Durability = "normal"
    ) -> None:
        if durability not in ("normal", "full"):
            raise ValueError("durability must be 'normal' or 'full'")
        self.path = str(path)
        self.durability = durability
        self._conn: sqlite3.Connection | None = None
        self._writer: _LoopCommitter | _GroupCommitter | None = None
        self._checkpointer: _Checkpointer | None = None

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(self.path, "NORMAL")
            _migrate(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open sqlite database {self.path}: {exc}") from exc
        self._conn = conn
        # the writing connection: its own, so that reads keep SQLite's busy wait
        writer = _connect(self.path, "FULL" if self.durability == "full" else "NORMAL")
        if self.path != ":memory:":
            for each in {conn, writer}:
                each.execute(f"PRAGMA wal_autocheckpoint={_Checkpointer.SAFETY_PAGES}")
            self._checkpointer = _Checkpointer(self.path)
        if self.durability == "full":
            self._writer = _GroupCommitter(writer)
        else:
            self._writer = _LoopCommitter(writer)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # commits what was submitted, closes the connection
        self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._conn is not None:
            self._conn.close()  # the last connection: SQLite checkpoints the rest
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("SQLiteStore is not open")
        return self._conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("SQLiteStore is not open")
        result = await self._writer.submit(fn)
        if self._checkpointer is not None:
            self._checkpointer.wrote()
        return result

    async def ping(self) -> None:
        self.conn.execute("SELECT 1").fetchone()

    async def write(self, batch: WriteBatch) -> None:
        await self._write(lambda conn: _apply(conn, batch))

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        return await self.load_after(key, window=window, after_seq=0)

    async def load_after(self, key: SessionKey, *, window: int, after_seq: int) -> Snapshot | None:
        ident = (key.tenant_id, key.user_id, key.session_id)
        conn = self.conn
        row = conn.execute(sql.SELECT_SESSION, ident).fetchone()
        if row is None:
            return None
        rows = conn.execute(sql.SELECT_WINDOW, (*ident, window, after_seq)).fetchall()
        running = [r[0] for r in conn.execute(sql.SELECT_RUNNING, ident)]
        summary = conn.execute(sql.SELECT_SUMMARY, ident).fetchone()
        record = _record(key, row, sql.summary_from_row(summary) if summary else None)
        return Snapshot(record, [decode_message(r[0]) for r in reversed(rows)], running)

    async def last_seq(self, key: SessionKey) -> int:
        row = self.conn.execute(
            sql.SELECT_LAST_SEQ, (key.tenant_id, key.user_id, key.session_id)
        ).fetchone()
        return int(row[0]) if row else 0

    async def revision(self, key: SessionKey) -> int:
        row = self.conn.execute(
            sql.SELECT_REVISION, (key.tenant_id, key.user_id, key.session_id)
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
            deleted = cursor.rowcount  # the last table deleted from is sessions
            if session_id is None:  # a user, a tenant or everything: their memories go too
                sqlite_memory.delete_scope(conn, where, params)
            runlog_sqlite.erase_runs(conn, where, params)
            return deleted

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

    async def summaries(self, key: SessionKey) -> list[SessionSummary]:
        ident = (key.tenant_id, key.user_id, key.session_id)
        return [sql.summary_from_row(r) for r in self.conn.execute(sql.SELECT_SUMMARIES, ident)]
