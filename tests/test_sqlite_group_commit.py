"""SQLiteStore group commit and background checkpoints, at both durability levels."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agenthost import Conflict, Message, SessionKey, SQLiteStore, StoreUnavailable
from agenthost.stores import sqlite as sqlite_store
from agenthost.stores.base import WriteBatch
from agenthost.stores.sqlite import _Checkpointer

DURABILITY = ["normal", "full"]


def batch(key: SessionKey, seq: int, text: str = "hi") -> WriteBatch:
    message = Message("user", text, run_id="run_1", seq=seq, created_at=1.0)
    return WriteBatch(key, 1.0, seq - 1, [message])


@pytest.mark.parametrize("durability", DURABILITY)
async def test_batches_submitted_together_share_commits(
    tmp_path: Path, durability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = sqlite_store._commit_jobs

    def counting(conn: sqlite3.Connection, jobs: list[Any]) -> list[Any]:
        sizes.append(len(jobs))
        return real(conn, jobs)

    monkeypatch.setattr(sqlite_store, "_commit_jobs", counting)
    store = SQLiteStore(tmp_path / "g.db", durability=durability)  # type: ignore[arg-type]
    await store.open()
    try:
        keys = [SessionKey("t", f"u{i}", "s") for i in range(50)]
        await asyncio.gather(*(store.write(batch(k, 1)) for k in keys))
        assert sum(sizes) == 50
        if durability == "normal":
            assert sizes == [50]  # all submitted in one pass of the loop
        else:
            assert len(sizes) < 50  # the writer thread takes what waits
        for key in keys:
            assert [m.content for m in await store.messages(key)] == ["hi"]
    finally:
        await store.close()


async def test_normal_durability_commits_a_pass_of_the_loop_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "g.db")
    try:
        before = other.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        keys = [SessionKey("t", f"u{i}", "s") for i in range(20)]
        tasks = [asyncio.ensure_future(store.write(batch(k, 1))) for k in keys]
        await asyncio.sleep(0)  # every task submitted its batch; none is committed yet
        assert other.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == before
        await asyncio.gather(*tasks)
        assert other.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == before + 20
    finally:
        other.close()
        await store.close()


@pytest.mark.parametrize("durability", DURABILITY)
async def test_a_conflict_fails_only_its_own_batch(tmp_path: Path, durability: str) -> None:
    store = SQLiteStore(tmp_path / "g.db", durability=durability)  # type: ignore[arg-type]
    await store.open()
    try:
        taken = SessionKey("t", "taken", "s")
        await store.write(batch(taken, 1, "first"))
        keys = [SessionKey("t", f"u{i}", "s") for i in range(5)]
        results = await asyncio.gather(
            store.write(batch(keys[0], 1)),
            store.write(batch(taken, 1, "again")),  # seq 1 exists: Conflict
            *(store.write(batch(k, 1)) for k in keys[1:]),
            return_exceptions=True,
        )
        assert isinstance(results[1], Conflict)
        assert [r for i, r in enumerate(results) if i != 1] == [None] * 5
        assert [m.content for m in await store.messages(taken)] == ["first"]
        for key in keys:
            assert [m.content for m in await store.messages(key)] == ["hi"]
            record = await store.load(key, window=5)
            assert record is not None and record.session.message_count == 1
    finally:
        await store.close()


async def test_close_commits_what_was_submitted(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    key = SessionKey("t", "u", "s")
    pending = asyncio.ensure_future(store.write(batch(key, 1, "last words")))
    await asyncio.sleep(0)
    await store.close()
    await pending
    reopened = SQLiteStore(tmp_path / "g.db")
    await reopened.open()
    try:
        assert [m.content for m in await reopened.messages(key)] == ["last words"]
    finally:
        await reopened.close()


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def rows_in_database_file(path: Path) -> int:
    """Messages in the database file itself: what checkpoints copied there, not the log."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # immutable: the log unread
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError:  # no table yet: nothing checkpointed
        return 0
    finally:
        conn.close()


class WatchedConnection:
    """The checkpointer's connection, watched: each pass's result, and a count to wait on."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.results: list[tuple[int, int, int]] = []
        self.passes = threading.Semaphore(0)

    def execute(self, sql: str) -> Any:
        rows = self.conn.execute(sql).fetchall()
        self.results.append(rows[0])  # (busy, frames in the log, frames checkpointed)
        self.passes.release()
        return _Rows(rows)

    def close(self) -> None:
        self.conn.close()

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait for checkpoint passes (never a fixed delay) until one leaves ``done()`` true."""
        while True:
            assert await asyncio.to_thread(self.passes.acquire, timeout=30), "no checkpoint"
            if done():
                return


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchall(self) -> list[Any]:
        return self.rows


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> list[WatchedConnection]:
    """Every checkpointer started from now on, watched through its connection."""
    started: list[WatchedConnection] = []
    real_init = _Checkpointer.__init__

    def init(self: _Checkpointer, path: str) -> None:
        real_init(self, path)  # its thread waits for a kick or IDLE before using _conn
        self._conn = watch = WatchedConnection(self._conn)  # type: ignore[assignment]
        started.append(watch)

    monkeypatch.setattr(_Checkpointer, "__init__", init)
    return started


@pytest.mark.parametrize("durability", DURABILITY)
async def test_a_background_thread_checkpoints_so_the_log_restarts(
    tmp_path: Path,
    durability: str,
    monkeypatch: pytest.MonkeyPatch,
    watched: list[WatchedConnection],
) -> None:
    monkeypatch.setattr(_Checkpointer, "EVERY_WRITES", 100)  # one kick per phase, at its end
    monkeypatch.setattr(_Checkpointer, "IDLE", 3600.0)  # and no pass on a timer
    path = tmp_path / "c.db"
    store = SQLiteStore(path, durability=durability)  # type: ignore[arg-type]
    await store.open()
    try:
        safety = _Checkpointer.SAFETY_PAGES
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == safety
        [checkpoints] = watched
        key = SessionKey("t", "u", "s")
        sizes = []
        for phase in range(1, 4):
            assert rows_in_database_file(path) == 100 * (phase - 1)
            for seq in range(phase * 100 - 99, phase * 100 + 1):
                await store.write(batch(key, seq, "x" * 2000))
            written = 100 * phase
            await checkpoints.until(lambda: rows_in_database_file(path) == written)  # noqa: B023
            busy, logged, copied = checkpoints.results[-1]
            assert busy == 0 and logged == copied > 0  # the whole log is in the database
            sizes.append(wal_size(path))
        # Each phase wrote the log over from its start instead of appending to it.
        assert sizes[2] < 1.5 * sizes[0]
        assert len(checkpoints.results) == 3  # one pass per kick, none on a timer
        assert len(await store.messages(key)) == 300
    finally:
        await store.close()
    assert wal_size(path) == 0


async def test_an_idle_store_is_checkpointed_without_a_kick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watched: list[WatchedConnection]
) -> None:
    monkeypatch.setattr(_Checkpointer, "EVERY_WRITES", 10**9)
    monkeypatch.setattr(_Checkpointer, "IDLE", 0.01)
    path = tmp_path / "i.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        for seq in range(1, 6):
            await store.write(batch(SessionKey("t", "u", "s"), seq))
        await watched[0].until(lambda: rows_in_database_file(path) == 5)
    finally:
        await store.close()


async def test_a_write_waits_for_another_process_without_stopping_the_loop(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "b.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        key = SessionKey("t", "u", "s")
        write = asyncio.ensure_future(store.write(batch(key, 1, "waited")))
        ticks = 0
        while ticks < 20:  # the loop keeps running while the write waits
            await asyncio.sleep(0.001)
            ticks += 1
        assert not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
        assert [m.content for m in await store.messages(key)] == ["waited"]
    finally:
        other.close()
        await store.close()


async def test_a_write_gives_up_when_the_lock_never_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store._LoopCommitter, "BUSY_TIMEOUT", 0.05)
    store = SQLiteStore(tmp_path / "b.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.write(batch(SessionKey("t", "u", "s"), 1))
        other.execute("ROLLBACK")
        await store.write(batch(SessionKey("t", "u", "s"), 1))  # and recovers
    finally:
        other.close()
        await store.close()


def test_a_write_left_by_a_stopped_event_loop_is_not_lost(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "l.db")
    key = SessionKey("t", "u", "s")
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.open())
        writer = store._writer
        assert isinstance(writer, sqlite_store._LoopCommitter)
        job = batch(key, 1, "left behind")
        # One pass of the loop: stop, submit (deferred: something else is ready), done.
        # The flush the submit scheduled would run on the next pass, which never comes.
        first.call_soon(first.stop)
        first.call_soon(lambda: writer.submit(lambda conn: sqlite_store._apply(conn, job)))
        first.call_soon(lambda: None)
        first.run_forever()
    finally:
        first.close()

    async def carry_on() -> list[str]:
        await store.write(batch(key, 2, "next"))
        return [m.content for m in await store.messages(key)]

    try:
        assert asyncio.run(carry_on()) == ["left behind", "next"]
    finally:
        asyncio.run(store.close())
