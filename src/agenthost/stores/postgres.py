"""PostgresStore: the store of record when many server processes share one database.

An asyncpg pool; the schema is created and upgraded by the versioned
migrations in :data:`MIGRATIONS` (a ``schema_migrations`` table records what
ran; :meth:`PostgresStore.migrate` applies the rest in one transaction under an
advisory lock, so processes starting together do not race). The SQL shared
with SQLite lives in :mod:`agenthost.stores.sql`; only the schema and a few
statements are PostgreSQL's own (long-term memory's in
:mod:`agenthost.stores.postgres_memory`). State, config, pending approvals, usage
and memory tags are JSONB (through orjson). Messages are stored as the orjson bytes of the
shared message format: JSONB cannot hold a NUL character, which a user may well
send, and the server never needs to look inside a message.

Every driver error surfaces as :class:`~agenthost.errors.StoreUnavailable`
(a duplicate seq as :class:`~agenthost.errors.Conflict`). The pool reconnects
by itself: a connection that died while PostgreSQL restarted is replaced on its
next use, and a call that failed on a dead connection before anything could
have been committed is retried once on a fresh one.

URL options (query parameters, removed before the DSN reaches asyncpg):
``schema`` (tables live in this schema, created if missing), ``min_size``,
``max_size``, ``migrate=false``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from agenthost import urls
from agenthost.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    MissingExtra,
    SessionBusy,
    SessionErased,
    StoreUnavailable,
)
from agenthost.keys import SessionKey
from agenthost.messages import Message, decode_message, encode_message
from agenthost.stores import runlog_postgres, sql
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

try:
    import asyncpg
except ModuleNotFoundError as exc:
    raise MissingExtra("postgres", "PostgreSQL support (store, coordination)") from exc

from agenthost.stores import postgres_memory  # after the guard: they need asyncpg too
from agenthost.stores.postgres_writes import (
    Grouped,
    Outcome,
    Write,
    write_key,
    write_statement,
    write_together,
)

T = TypeVar("T")
Connection = Any  # asyncpg ships no type stubs


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "sessions, messages, runs and user memory",
        """
        CREATE TABLE sessions (
            tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
            last_seq BIGINT NOT NULL DEFAULT 0, message_count BIGINT NOT NULL DEFAULT 0,
            state JSONB NOT NULL DEFAULT '{}', config JSONB NOT NULL DEFAULT '{}',
            pending JSONB NOT NULL DEFAULT '[]',
            PRIMARY KEY (tenant_id, user_id, session_id)
        );
        -- retention sweeps and the admin listing (newest first, all tenants)
        CREATE INDEX sessions_updated ON sessions (updated_at);
        -- a tenant's or a user's sessions, newest first
        CREATE INDEX sessions_tenant_updated ON sessions (tenant_id, updated_at);
        CREATE INDEX sessions_user_updated ON sessions (tenant_id, user_id, updated_at);
        CREATE TABLE messages (
            tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
            seq BIGINT NOT NULL, run_id TEXT, role TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, data BYTEA NOT NULL,
            PRIMARY KEY (tenant_id, user_id, session_id, seq)
        );
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, user_id TEXT NOT NULL,
            session_id TEXT NOT NULL, status TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,
            error TEXT, usage JSONB
        );
        CREATE INDEX runs_session ON runs (tenant_id, user_id, session_id, started_at);
        CREATE INDEX runs_running ON runs (tenant_id, user_id, session_id)
            WHERE status = 'running';
        CREATE TABLE user_memory (
            tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, data JSONB NOT NULL,
            PRIMARY KEY (tenant_id, user_id)
        );
        """,
    ),
    Migration(
        2,
        "session leases for cross-process turn ordering",
        """
        CREATE TABLE session_leases (
            tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
            token TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (tenant_id, user_id, session_id)
        ) WITH (fillfactor = 70);
        """,
    ),
    Migration(
        3,
        "session revisions (compare-and-set writes) and request ids on runs",
        """
        ALTER TABLE sessions ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
        ALTER TABLE runs ADD COLUMN request_id TEXT;
        """,
    ),
    Migration(
        4,
        "session leases unlogged: taking and releasing one waits for no WAL flush",
        # Leases are coordination, not data: if PostgreSQL crashes (or fails over to a
        # replica) they are gone, and turns that were holding them are fenced by the
        # session revision check instead (see docs/deployment.md).
        "ALTER TABLE session_leases SET UNLOGGED;",
    ),
    Migration(
        5,
        "session summaries, and memory records with full-text search (replacing user_memory)",
        postgres_memory.MIGRATION,
    ),
    Migration(6, "run logs, idempotency keys and cancel requests", runlog_postgres.MIGRATION_SQL),
)

UPSERT_RUN = sql.to_postgres(sql.UPSERT_RUN)
SELECT_REVISION = sql.to_postgres(sql.SELECT_REVISION)
SELECT_LAST_SEQ = sql.to_postgres(sql.SELECT_LAST_SEQ)
SELECT_MESSAGES = sql.to_postgres(sql.SELECT_MESSAGES)
SELECT_RUNS = sql.to_postgres(sql.SELECT_RUNS)
SELECT_RUN = sql.to_postgres(sql.SELECT_RUN)
SELECT_SUMMARIES = sql.to_postgres(sql.SELECT_SUMMARIES)

# Sessions as load() reads them, in one statement (one snapshot): for each key that
# exists, its index (from 1), its row, its window (newest first), its open runs, and its
# newest summary's columns (NULLs if none). Concurrent loads go together (Grouped).
_K = "{a}.tenant_id = k.tenant_id AND {a}.user_id = k.user_id AND {a}.session_id = k.session_id"
SELECT_SNAPSHOTS = f"""
SELECT k.i, s.created_at, s.updated_at, s.last_seq, s.message_count, s.state, s.config,
    s.pending, s.revision,
    ARRAY(SELECT m.data FROM messages AS m WHERE {_K.format(a="m")} AND m.seq > k.after
          ORDER BY m.seq DESC LIMIT k.size),
    ARRAY(SELECT r.run_id FROM runs AS r WHERE {_K.format(a="r")} AND r.status = 'running'),
    x.version, x.text, x.from_seq, x.to_seq, x.created_at AS summary_at, x.model, x.error
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[]) WITH ORDINALITY
    AS k(tenant_id, user_id, session_id, size, after, i)
JOIN sessions AS s ON {_K.format(a="s")}
LEFT JOIN LATERAL (
    SELECT version, text, from_seq, to_seq, created_at, model, error FROM summaries AS y
    WHERE {_K.format(a="y")} ORDER BY version DESC LIMIT 1) AS x ON true
"""
DELETE_BY_KEY = {t: f"DELETE FROM {t} WHERE {sql.to_postgres(sql.KEY)}" for t in sql.TABLES}
# Retention takes its victims in one statement; SKIP LOCKED leaves sessions that a
# turn is writing right now for the next sweep.
DELETE_IDLE = """
DELETE FROM sessions WHERE (tenant_id, user_id, session_id) IN (
    SELECT tenant_id, user_id, session_id FROM sessions WHERE updated_at < $1
    ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING tenant_id, user_id, session_id
"""

# Errors that mean "the connection or the server went away", after which a call
# that never reached COMMIT can safely run again on a fresh connection.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # protocol state broken by a dropped connection
    OSError,
)
# Everything the driver can raise that is not a bug of ours.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# lock_ttl and lock_wait configure the lease coordinator (agenthost.coordination).
_OUR_OPTIONS = ("schema", "min_size", "max_size", "migrate", "lock_ttl", "lock_wait")


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split our options off a ``postgresql://`` URL: ``(dsn for asyncpg, options)``.

    The one parser is :func:`agenthost.urls.parse_url`, which also checks the options.
    """
    parsed = urls.parse_url(url)
    return parsed.driver_url, dict(parsed.options)


def redact(dsn: str) -> str:
    """The DSN without its password, for error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _encode_jsonb(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: Connection) -> None:
    """Per-connection setup: JSONB in and out as Python objects, through orjson."""
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


async def keep_session(conn: Connection) -> None:
    """The pool's reset: nothing to undo, so no query.

    agenthost never changes session state (no SET, LISTEN or session-level advisory
    locks; migrations take a transaction-level one), and asyncpg itself rolls back an
    open transaction before calling this. The default reset would send RESET ALL,
    UNLISTEN and friends on every release: a round trip per query for nothing.
    """


async def create_pool(
    dsn: str,
    *,
    schema: str | None,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    command_timeout: float | None,
) -> Any:
    """An asyncpg pool with our codecs and search path; ``StoreUnavailable`` if unreachable."""
    settings = {"search_path": schema} if schema else {}
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            reset=keep_session,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=settings,
        )
    except DRIVER_ERRORS as exc:
        raise StoreUnavailable(
            f"cannot connect to PostgreSQL at {redact(dsn)}: {describe(exc)}"
        ) from exc


async def apply_migrations(conn: Connection, schema: str | None) -> list[int]:
    """Apply pending migrations in one transaction; return the versions applied now."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(f"migrate:{schema}"))
        if schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
        return applied


async def call(
    pool: Any,
    fn: Callable[[Connection], Awaitable[T]],
    *,
    transaction: bool = False,
    acquire_timeout: float = 5.0,
) -> T:
    """Run ``fn`` on a pooled connection (in a transaction if asked), translating errors.

    A failure on a connection that died (PostgreSQL restarted, network blip) is
    retried once on a fresh connection, unless COMMIT was already sent: then the
    outcome is unknown and the caller gets ``StoreUnavailable``.
    """
    for attempt in (1, 2):
        committing = False
        try:
            async with pool.acquire(timeout=acquire_timeout) as conn:
                if not transaction:
                    return await fn(conn)
                async with conn.transaction():
                    result = await fn(conn)
                    committing = True
                return result
        except CONNECTION_LOST as exc:
            if attempt == 1 and not committing:
                # When one connection died (a restart, a failover) its siblings most
                # likely did too: have every idle one reconnect on its next use.
                await pool.expire_connections()
                continue
            raise StoreUnavailable(f"PostgreSQL is unavailable: {describe(exc)}") from exc
        except TimeoutError as exc:
            raise StoreUnavailable(
                "PostgreSQL did not answer in time (every pooled connection busy, "
                "or the server overloaded)"
            ) from exc
        except asyncpg.UntranslatableCharacterError as exc:
            raise InvalidInput(
                "a JSON value contains a character PostgreSQL cannot store (NUL, \\u0000)"
            ) from exc
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL request failed: {describe(exc)}") from exc
    raise AssertionError("unreachable")


class LazyPool:
    """A small pool of its own, opened on first use, with ``setup`` (its migrations) run
    once as it opens: what a PostgreSQL lease coordinator, quota backend or usage ledger
    keeps beside the store. ``StoreUnavailable`` if the database cannot be reached."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None,
        max_size: int,
        setup: Callable[[Connection], Awaitable[object]] | None = None,
        transaction: bool = False,
        command_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.max_size = max_size
        self.setup = setup
        self.transaction = transaction
        self.command_timeout = command_timeout
        self.pool: Any = None
        self._opening = asyncio.Lock()

    async def get(self) -> Any:
        if self.pool is not None:
            return self.pool
        async with self._opening:
            if self.pool is None:
                pool = await create_pool(
                    self.dsn,
                    schema=self.schema,
                    min_size=0,
                    max_size=self.max_size,
                    connect_timeout=5.0,
                    command_timeout=self.command_timeout,
                )
                if self.setup is not None:
                    try:
                        await call(pool, self.setup, transaction=self.transaction)
                    except BaseException:
                        pool.terminate()
                        raise
                self.pool = pool
        return self.pool

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()


def check_schema(schema: str | None) -> str | None:
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise ConfigError(f"schema {schema!r} must be a plain identifier (letters, digits, _)")
    return schema


def _record(key: SessionKey, row: Any, summary: Any = None) -> SessionRecord:
    return SessionRecord(
        key,
        row["created_at"],
        row["updated_at"],
        row["last_seq"],
        row["message_count"],
        row["state"],
        row["config"],
        pending_from_json(row["pending"]),
        row["revision"],
        None if summary is None else sql.summary_from_row(summary),
    )


def _run_record(row: Any) -> RunRecord:
    return RunRecord.from_dict(row)


def _int_option(options: dict[str, str], name: str, default: int) -> int:
    try:
        return int(options.get(name, default))
    except ValueError:
        raise ConfigError(f"{name}={options[name]!r} in the store URL is not a number") from None


def _count(status: str) -> int:
    """Rows affected, from a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore(postgres_memory.PostgresMemories, runlog_postgres.PostgresRunLog):
    """``PostgresStore("postgresql://user@host/db", max_size=20)``; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int | None = None,
        max_size: int | None = None,
        schema: str | None = None,
        migrate: bool | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float | None = 30.0,
    ) -> None:
        self.dsn, options = parse_url(url)
        self.schema = check_schema(schema if schema is not None else options.get("schema"))
        self.min_size = min_size if min_size is not None else _int_option(options, "min_size", 1)
        self.max_size = max_size if max_size is not None else _int_option(options, "max_size", 10)
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ConfigError("PostgreSQL pool needs 0 <= min_size <= max_size and max_size >= 1")
        self.auto_migrate = (
            migrate
            if migrate is not None
            else options.get("migrate", "true").lower() not in ("0", "false", "no")
        )
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._writes: Grouped[Write, Outcome] = Grouped(
            self._write_alone, self._write_together, write_key
        )
        self._loads: Grouped[tuple[SessionKey, int, int], Snapshot | None] = Grouped(
            self._load_alone, self._load_together, lambda item: item[0]
        )

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.dsn)!r}, schema={self.schema!r})"

    @property
    def pool(self) -> Any:
        """The asyncpg pool (None until :meth:`open`): the folded lease coordinator's too."""
        return self._pool

    # -- connection management -----------------------------------------------------

    async def open(self) -> None:
        async with self._opening:  # turns arriving together may each try to open
            if self._pool is not None:
                return
            self._pool = await create_pool(
                self.dsn,
                schema=self.schema,
                min_size=self.min_size,
                max_size=self.max_size,
                connect_timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
            )
            if self.auto_migrate:
                try:
                    await self.migrate()
                except BaseException:
                    await self.close()
                    raise

    async def close(self) -> None:
        await self._writes.close()
        await self._loads.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except DRIVER_ERRORS:
                pool.terminate()

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied by this call."""
        return await self._call(lambda conn: apply_migrations(conn, self.schema))

    async def applied_migrations(self) -> list[int]:
        rows = await self._call(
            lambda conn: conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        )
        return [row[0] for row in rows]

    async def _call(
        self, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        if self._pool is None:
            raise StoreUnavailable("PostgresStore is not open")
        return await call(
            self._pool, fn, transaction=transaction, acquire_timeout=self.connect_timeout
        )

    async def ping(self) -> None:
        await self._call(lambda conn: conn.fetchval("SELECT 1"))

    # -- the hot path --------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> None:
        """One statement, one round trip: the session row, the append and the run record
        (with other turns' writes, grouped: see :mod:`agenthost.stores.postgres_writes`)."""
        revision = batch.new_revision()
        lease = batch.lease
        action = ""
        if lease is not None:
            action = "give" if lease.held and batch.release else "" if lease.held else "take"
        if batch.base_revision is not None and batch.summary is None:
            written, leased, current = await self._writes.submit((batch, action))
        else:
            written, leased, current = await self._write_alone((batch, action))
        # A refused write whose session is at this write's own revision is this write,
        # committed on a connection lost before the answer came (and retried).
        if written != 1 and current != revision:
            k, base = batch.key, batch.base_revision
            if not leased:
                raise SessionBusy(f"session {k.session_id!r} is busy with a turn elsewhere")
            if lease is not None and action == "take":  # won, though the copy was stale
                lease.held, lease.since = True, time.monotonic()
            if current is None and base:
                raise SessionErased(f"session {k.session_id!r} was erased while it was in use")
            raise Conflict(f"session {k} changed since revision {base}", exists=current is not None)
        if lease is not None and action:
            lease.held = action == "take"
            lease.since = time.monotonic()

    async def _write_together(self, writes: list[Write]) -> list[Outcome]:
        return await write_together(self._call, writes)

    async def _write_alone(self, write: Write) -> Outcome:
        """A batch as one statement of its own (see :func:`write_statement`)."""
        batch, action = write
        k = batch.key
        messages = batch.messages
        revision = batch.new_revision()
        base = batch.base_revision
        pending = batch.pending
        args: list[Any] = [
            k.tenant_id,
            k.user_id,
            k.session_id,
            batch.now,
            messages[-1].seq if messages else batch.base_seq,
            len(messages),
            batch.state,
            batch.config,
            None if pending is None else pending_to_json(pending),
            revision,
        ]
        mode = "upsert" if base is None else "insert" if base == 0 else "update"
        if mode == "update":
            args.append(base)
        if messages:
            args += [
                [m.seq for m in messages],
                [m.run_id for m in messages],
                [m.role for m in messages],
                [m.created_at for m in messages],
                [encode_message(m) for m in messages],
            ]
        run = batch.run
        if run is not None:
            args += [
                run.run_id,
                k.tenant_id,
                k.user_id,
                k.session_id,
                run.status,
                run.started_at,
                run.finished_at,
                run.error,
                run.usage.to_dict(),
                run.request_id,
            ]
        summary = batch.summary
        if summary is not None:
            args += [
                summary.version,
                summary.text,
                summary.from_seq,
                summary.to_seq,
                summary.created_at,
                summary.model,
                summary.error,
            ]
        lease = batch.lease
        if lease is not None and action:
            args.append(lease.token)
            if action == "take":
                args.append(lease.ttl)
        statement = write_statement(
            mode, bool(messages), run is not None, summary is not None, action
        )

        async def work(conn: Connection) -> Any:
            try:
                return await conn.fetchrow(statement, *args)
            except asyncpg.UniqueViolationError:
                raise Conflict(f"session {k} has messages past seq {batch.base_seq}") from None

        try:
            written, leased, current = await self._call(work)
        except Conflict:
            # A retry after a connection lost mid-write may find the write already
            # committed: the session at this write's own revision means it is ours.
            stored = await self._call(lambda conn: conn.fetchval(SELECT_REVISION, *args[:3]))
            if stored != revision:
                raise
            return 1, 1, None
        return written, leased, current

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        """The session in one statement (with other loads made meanwhile: see Grouped)."""
        return await self._loads.submit((key, window, 0))

    async def load_after(self, key: SessionKey, *, window: int, after_seq: int) -> Snapshot | None:
        return await self._loads.submit((key, window, after_seq))

    async def _load_alone(self, item: tuple[SessionKey, int, int]) -> Snapshot | None:
        return (await self._load_together([item]))[0]

    async def _load_together(
        self, items: list[tuple[SessionKey, int, int]]
    ) -> list[Snapshot | None]:
        args = (
            [key.tenant_id for key, _, _ in items],
            [key.user_id for key, _, _ in items],
            [key.session_id for key, _, _ in items],
            [window for _, window, _ in items],
            [after for _, _, after in items],
        )
        rows = await self._call(lambda conn: conn.fetch(SELECT_SNAPSHOTS, *args))
        found: list[Snapshot | None] = [None] * len(items)
        for row in rows:
            index = row[0] - 1
            summary = None if row[11] is None else tuple(row[i] for i in range(11, 18))
            window = [decode_message(data) for data in reversed(row[9])]
            record = _record(items[index][0], row, summary)
            found[index] = Snapshot(record, window, list(row[10]))
        return found

    async def last_seq(self, key: SessionKey) -> int:
        value = await self._call(
            lambda conn: conn.fetchval(SELECT_LAST_SEQ, key.tenant_id, key.user_id, key.session_id)
        )
        return int(value) if value is not None else 0

    async def revision(self, key: SessionKey) -> int:
        value = await self._call(
            lambda conn: conn.fetchval(SELECT_REVISION, key.tenant_id, key.user_id, key.session_id)
        )
        return int(value) if value is not None else 0

    # -- reading -------------------------------------------------------------------

    async def messages(
        self, key: SessionKey, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Message]:
        rows = await self._call(
            lambda conn: conn.fetch(
                SELECT_MESSAGES, key.tenant_id, key.user_id, key.session_id, after_seq, limit
            )
        )
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
        query = sql.to_postgres(
            f"SELECT {sql.SESSION_COLUMNS} FROM sessions{where} "
            f"ORDER BY updated_at DESC LIMIT ?{n + 1} OFFSET ?{n + 2}"
        )
        rows = await self._call(lambda conn: conn.fetch(query, *params, limit, offset))
        return [_record(SessionKey(r[0], r[1], r[2]), r) for r in rows]

    async def count_sessions(
        self, *, tenant_id: str | None = None, user_id: str | None = None
    ) -> int:
        where, params = sql.scope_filter(tenant_id, user_id, None)
        query = sql.to_postgres(f"SELECT COUNT(*) FROM sessions{where}")
        return int(await self._call(lambda conn: conn.fetchval(query, *params)))

    async def runs(self, key: SessionKey, *, limit: int = 50) -> list[RunRecord]:
        rows = await self._call(
            lambda conn: conn.fetch(SELECT_RUNS, key.tenant_id, key.user_id, key.session_id, limit)
        )
        return [_run_record(r) for r in rows]

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._call(lambda conn: conn.fetchrow(SELECT_RUN, run_id))
        return _run_record(row) if row is not None else None

    # -- deleting ------------------------------------------------------------------

    async def delete(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        check_scope(tenant_id, user_id, session_id)
        where, params = sql.scope_filter(tenant_id, user_id, session_id)
        where = sql.to_postgres(where)

        async def work(conn: Connection) -> int:
            deleted = 0
            for table in sql.TABLES:  # sessions last: its count is the answer
                deleted = _count(await conn.execute(f"DELETE FROM {table}{where}", *params))
            if session_id is None:  # after the sessions: see postgres_memory on fences
                scope, scope_params = sql.scope_filter(tenant_id, user_id, None)
                await postgres_memory.delete_scope(conn, scope, scope_params)
            await runlog_postgres.erase_runs(conn, where, params)
            return deleted

        return await self._call(work, transaction=True)

    async def delete_idle(self, *, before: float, limit: int) -> int:
        async def work(conn: Connection) -> int:
            keys = [tuple(r) for r in await conn.fetch(DELETE_IDLE, before, limit)]
            if keys:
                for table in ("messages", "runs", "summaries"):
                    await conn.executemany(DELETE_BY_KEY[table], keys)
            return len(keys)

        return await self._call(work, transaction=True)

    async def summaries(self, key: SessionKey) -> list[SessionSummary]:
        ident = (key.tenant_id, key.user_id, key.session_id)
        rows = await self._call(lambda conn: conn.fetch(SELECT_SUMMARIES, *ident))
        return [sql.summary_from_row(r) for r in rows]
