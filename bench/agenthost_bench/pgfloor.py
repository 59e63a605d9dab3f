"""The PostgreSQL floor for B7: ``pgbench`` committing what a turn must, at the same
concurrency, against the same server.

The durability rule needs two commits per turn: the user's message with a running
run record before the model is called, the reply with the finished run after. The
script below is those two statements, written as agenthost writes them (one
data-modifying statement each: the session row's revision compare-and-set, the
message, the run), on tables made by agenthost's own migrations in a schema of
the floor's own, over 1,000 sessions. ``turns_per_s`` is pgbench's transactions
per second: each transaction is one turn's two commits.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

SESSIONS = 1000

SETUP = """
INSERT INTO sessions (tenant_id, user_id, session_id, created_at, updated_at, revision)
SELECT 'floor', 'u' || g, 's', 0, 0, 1 FROM generate_series(1, {sessions}) AS g;
"""

# One turn: (1) the user's message and the running run, (2) the reply and the finished
# run; each a compare-and-set of the session row's revision, as agenthost's write is.
WRITE = """WITH session AS (
  UPDATE sessions SET updated_at = {step}, last_seq = last_seq + 1,
    message_count = message_count + 1, revision = revision + 1
  WHERE tenant_id = 'floor' AND user_id = 'u' || :k AND session_id = 's'
    AND revision = revision RETURNING last_seq),
appended AS (
  INSERT INTO messages (tenant_id, user_id, session_id, seq, run_id, role, created_at, data)
  SELECT 'floor', 'u' || :k, 's', last_seq, 'r' || :run, '{role}', {step}, '\\x7b7d'
  FROM session),
run AS (
  INSERT INTO runs (run_id, tenant_id, user_id, session_id, status, started_at, usage)
  SELECT 'r' || :run, 'floor', 'u' || :k, 's', '{status}', 1, '{{{{}}}}' FROM session
  ON CONFLICT (run_id) DO UPDATE SET status = '{status}')
SELECT count(*) FROM session;
"""
SCRIPT = (
    "\\set k random(1, {sessions})\n\\set run random(1, 1000000000)\n"
    + WRITE.format(step=1, role="user", status="running")
    + WRITE.format(step=2, role="assistant", status="completed")
)


def unavailable() -> str | None:
    if shutil.which("pgbench") is None:
        return "pgbench is not installed (Debian: postgresql-client)"
    return None


async def _prepare(url: str, schema: str) -> None:
    import asyncpg

    from agenthost.stores.postgres import PostgresStore

    store = PostgresStore(url, schema=schema, max_size=1)
    await store.open()  # agenthost's own migrations make the tables
    await store.close()
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.execute(SETUP.format(sessions=SESSIONS))
    finally:
        await conn.close()


async def _drop(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def measure(url: str, *, clients: int, seconds: float) -> dict[str, float]:
    """pgbench with ``clients`` connections for ``seconds``: turns per second (2 commits each)."""
    schema = f"pgfloor_{os.getpid()}_{time.time_ns()}"
    asyncio.run(_prepare(url, schema))
    try:
        parts = urlsplit(url)
        env = dict(os.environ, PGOPTIONS=f"-c search_path={schema}")
        if parts.password:
            env["PGPASSWORD"] = parts.password
        with tempfile.TemporaryDirectory(prefix="agenthost-pgfloor-") as tmp:
            script = Path(tmp) / "turn.sql"
            script.write_text(SCRIPT.format(sessions=SESSIONS))
            command = [
                "pgbench",
                "-n",
                "-M",
                "prepared",
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(max(1, round(seconds))),
                "-f",
                str(script),
                "-h",
                parts.hostname or "127.0.0.1",
                "-p",
                str(parts.port or 5432),
                "-U",
                parts.username or "postgres",
                (parts.path or "/postgres").lstrip("/") or "postgres",
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-1000:]}")
        tps = re.search(r"tps = ([\d.]+)", done.stdout)
        latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
        if tps is None:
            raise RuntimeError(f"pgbench printed no tps: {done.stdout[-500:]}")
        return {
            "clients": float(clients),
            "turns_per_s": float(tps.group(1)),
            "latency_ms": float(latency.group(1)) if latency else 0.0,
        }
    finally:
        asyncio.run(_drop(url, schema))
