"""The HTTP floors of B5: bare Starlette apps on the same uvicorn.

``app`` does what any JSON endpoint must (read the body, parse it, build and send a
small JSON reply) and nothing else, so ``agenthost turns/s ÷ floor requests/s``
says how close a turn over HTTP is to what Python and uvicorn can serve at all.

``durable_app`` also commits what agenthost's durability rule requires of a turn,
as SQLite's floor: two transactions in the database file named by
``$AGENTHOST_FLOOR_DB`` (WAL, ``synchronous=NORMAL``, agenthost's own schema), each
the session row's update, the message and the run record, as agenthost writes them
(the user's message with a running run before the model would be called, the reply
with the finished run after). No history is read, no session is cached, nothing is
grouped: what is left of a turn once everything that is agenthost is taken away.

Replies have the shape the load generator checks (``user_id`` and ``"You said:
<message>"``), so the floors and agenthost are driven by the same client with the same
bodies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agenthost_bench.process import python_module


async def chat(request: Request) -> Response:
    try:
        data = orjson.loads(await request.body())
        body = orjson.dumps({"user_id": data["user_id"], "reply": "You said: " + data["message"]})
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return Response(b'{"error":"bad body"}', 400, media_type="application/json")
    return Response(body, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/v1/chat", chat, methods=["POST"]), Route("/healthz", healthz)])

_TURN = (
    # the session row (made on first use), its last seq moved on; then the message, the run
    "INSERT INTO sessions (tenant_id, user_id, session_id, created_at, updated_at, last_seq,"
    " message_count, revision) VALUES ('floor', ?1, 'default', ?2, ?2, 1, 1, 1)"
    " ON CONFLICT (tenant_id, user_id, session_id) DO UPDATE SET updated_at = ?2,"
    " last_seq = last_seq + 1, message_count = message_count + 1, revision = revision + 1"
    " RETURNING last_seq",
    "INSERT INTO messages (tenant_id, user_id, session_id, seq, run_id, role, created_at, data)"
    " VALUES ('floor', ?1, 'default', ?2, ?3, ?4, ?5, ?6)",
    "INSERT INTO runs (run_id, tenant_id, user_id, session_id, status, started_at, usage)"
    " VALUES (?1, 'floor', ?2, 'default', ?3, ?4, '{}')"
    " ON CONFLICT (run_id) DO UPDATE SET status = ?3, finished_at = ?4",
)


class _Database:
    connection: sqlite3.Connection | None = None
    runs = 0


def _commit(conn: sqlite3.Connection, user: str, run_id: str, role: str, text: str) -> None:
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    (seq,) = conn.execute(_TURN[0], (user, now)).fetchone()
    data = orjson.dumps({"role": role, "content": text, "created_at": now})
    conn.execute(_TURN[1], (user, seq, run_id, role, now, data))
    status = "running" if role == "user" else "completed"
    conn.execute(_TURN[2], (run_id, user, status, now))
    conn.execute("COMMIT")


async def durable_chat(request: Request) -> Response:
    try:
        data = orjson.loads(await request.body())
        user, message = data["user_id"], data["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return Response(b'{"error":"bad body"}', 400, media_type="application/json")
    conn = _Database.connection
    assert conn is not None
    _Database.runs += 1
    run_id = f"{os.getpid()}-{_Database.runs}"
    reply = "You said: " + message
    _commit(conn, user, run_id, "user", message)  # before the model would be called
    _commit(conn, user, run_id, "assistant", reply)  # the reply, the run finished
    return Response(orjson.dumps({"user_id": user, "reply": reply}), media_type="application/json")


@contextlib.asynccontextmanager
async def _database(app: Starlette) -> AsyncIterator[None]:
    from agenthost.stores.sqlite import SQLiteStore

    path = os.environ["AGENTHOST_FLOOR_DB"]
    store = SQLiteStore(path)  # agenthost's schema, made once (a worker may find it made)
    await store.open()
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")  # the other worker's write lock: wait
    _Database.connection = conn
    try:
        yield
    finally:
        conn.close()


durable_app = Starlette(
    routes=[Route("/v1/chat", durable_chat, methods=["POST"]), Route("/healthz", healthz)],
    lifespan=_database,
)


@contextlib.contextmanager
def serving(
    port: int, workers: int, directory: Path, *, durable: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """A floor under uvicorn with ``agenthost serve``'s settings (uvloop, httptools, no
    access log), ``workers`` processes; ``durable``: the one that commits to SQLite."""
    command, env = python_module("floor")
    if durable:
        env["AGENTHOST_FLOOR_DB"] = str(directory / "floor.db")
    command = [
        command[0],
        "-m",
        "uvicorn",
        "agenthost_bench.floor:durable_app" if durable else "agenthost_bench.floor:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with (directory / "floor.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=log, stderr=log)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
