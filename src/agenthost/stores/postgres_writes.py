"""How :class:`~agenthost.stores.postgres.PostgresStore` writes: each
:class:`~agenthost.stores.base.WriteBatch` as one statement
(:func:`write_statement`), and group commit (:class:`Grouped`): writes made at
the same time share one statement, so one round trip and one commit.

What a write costs the server process is mostly its round trip (a send, the
database's wake-up, a receive), not its rows. So at most one write statement
is in flight per store: a write that finds none goes at once, by itself; writes
that arrive meanwhile wait and then go together, as one statement over arrays
(:data:`GROUP_WRITE`) that does each write's lease, revision compare-and-set,
append and run record, and answers for each write as the single statement does
(written, lease ours, the session's revision if refused). At low load this is
the single statement; under load, many turns' writes per round trip. The store
groups its loads the same way.

A group is one transaction. A server-side error in it (a duplicate seq, which
the revision check makes impossible for the Host's writes; a value PostgreSQL
cannot store) writes none of the group, whose writes are then sent one by one,
so that only the write at fault fails. A group never holds two writes of one
session: a second one waits for the next group, so writes of one session stay
in order. Only revision-checked writes without a summary are grouped; the rest
go alone.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import asyncpg
import orjson

from agenthost.keys import SessionKey
from agenthost.messages import encode_message
from agenthost.stores import sql
from agenthost.stores.base import WriteBatch, pending_to_json

Outcome = tuple[int, int, int | None]
"""A write's answer: rows written (0: refused), lease ours (0: another holder has it),
and if refused the session's revision as it stands (None: no such session)."""

MAX_GROUP = 256
Item = TypeVar("Item")
Result = TypeVar("Result")
ACTIONS = {"": 0, "take": 1, "give": 2}

_KEY_OF = (
    "{a}.tenant_id = {b}.tenant_id AND {a}.user_id = {b}.user_id "
    "AND {a}.session_id = {b}.session_id"
)
_SESSION_COLUMNS = sql.SESSION_COLUMNS

# Parameters that are JSONB in the shared statements: PostgreSQL cannot infer the
# type of a bare parameter inside COALESCE, so those get an explicit cast.
_JSONB_PARAMS = re.compile(r"\$([789])\b")


def _session_sql(statement: str) -> str:
    return _JSONB_PARAMS.sub(r"$\1::jsonb", sql.to_postgres(statement)).strip()


# The session CTE of a write, by WriteBatch.base_revision: None, 0 (create), or a revision.
_SESSION_CTE = {
    "upsert": _session_sql(sql.UPSERT_SESSION) + " RETURNING 1",
    "insert": _session_sql(sql.INSERT_SESSION) + " ON CONFLICT DO NOTHING RETURNING 1",
    "update": _session_sql(sql.UPDATE_SESSION) + " RETURNING 1",
}
_PLACEHOLDER = re.compile(r"\$(\d+)")

_ACQUIRE_LEASE = """
INSERT INTO session_leases AS lease (tenant_id, user_id, session_id, token, expires_at)
VALUES ($1, $2, $3, {token}, clock_timestamp() + make_interval(secs => {ttl}))
ON CONFLICT (tenant_id, user_id, session_id) DO UPDATE
    SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
    WHERE lease.expires_at < clock_timestamp() OR lease.token = EXCLUDED.token"""
ACQUIRE_LEASE = _ACQUIRE_LEASE.format(token="$4", ttl="$5")
"""Take a session's lease (``$4`` the token, ``$5`` the ttl in seconds) if it is free,
expired, or already ours; the row comes back only if it was taken."""
# The session CTE of a leased write that takes the lease: it writes only if it was won.
_TAKEN = " AND EXISTS (SELECT 1 FROM lease)"
_INSERT_TAKEN = (
    f"INSERT INTO sessions ({sql.SESSION_COLUMNS}) SELECT $1::text, $2::text, $3::text, "
    "$4::float8, $4::float8, $5::bigint, $6::bigint, COALESCE($7::jsonb, '{}'), "
    "COALESCE($8::jsonb, '{}'), COALESCE($9::jsonb, '[]'), $10::bigint "
    "WHERE EXISTS (SELECT 1 FROM lease) ON CONFLICT DO NOTHING RETURNING 1"
)


def _shift(statement: str, offset: int) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + offset}", statement)


@functools.cache
def write_statement(
    mode: str, messages: bool, run: bool, summary: bool = False, lease: str = ""
) -> str:
    """A whole :class:`WriteBatch` as one statement (data-modifying CTEs, one implicit
    transaction). The session row's CTE (an upsert, a create, or the revision
    compare-and-set) returns a row only if it wrote; messages, run and summary are
    written only then. ``lease="take"`` takes the session's lease first and writes
    only if it was won; ``"give"`` deletes the lease once the write is done.

    The statement answers one row: session rows written (0: refused), whether the
    lease is ours (1 unless it was to be taken and was not), and, if refused, the
    session's revision as it stands (NULL: no such session). Parameters: the
    session's ten (eleven with the base revision), five arrays of the new messages
    (if any), the run's ten (if any), the summary's seven (if any), the lease's
    token (and its ttl in seconds, to take it)."""
    count = 11 if mode == "update" else 10
    count += (5 if messages else 0) + (10 if run else 0) + (7 if summary else 0)
    parts: list[str] = []
    session = _SESSION_CTE[mode]
    if lease == "take":
        if mode == "upsert":
            raise ValueError("an unchecked write (no base revision) cannot take a lease")
        parts.append(
            f"lease AS ({_ACQUIRE_LEASE.format(token=f'${count + 1}', ttl=f'${count + 2}')}"
            " RETURNING 1)"
        )
        session = (
            _INSERT_TAKEN
            if mode == "insert"
            else session.replace(" RETURNING 1", _TAKEN + " RETURNING 1")
        )
    parts.append(f"session AS ({session})")
    count = 11 if mode == "update" else 10
    if messages:
        parts.append(
            "appended AS (INSERT INTO messages (tenant_id, user_id, session_id, seq, run_id, "
            f"role, created_at, data) SELECT $1, $2, $3, m.* FROM unnest(${count + 1}::bigint[], "
            f"${count + 2}::text[], ${count + 3}::text[], ${count + 4}::float8[], "
            f"${count + 5}::bytea[]) AS m WHERE EXISTS (SELECT 1 FROM session))"
        )
        count += 5
    if run:
        values = _shift(
            "$1::text, $2::text, $3::text, $4::text, $5::text, $6::float8, $7::float8, "
            "$8::text, $9::jsonb, $10::text",
            count,
        )
        on_conflict = _shift(sql.to_postgres(sql.RUN_ON_CONFLICT), count)
        parts.append(
            f"run AS (INSERT INTO runs ({sql.RUN_COLUMNS}) SELECT {values} "
            f"WHERE EXISTS (SELECT 1 FROM session) {on_conflict})"
        )
        count += 10
    if summary:
        values = _shift(
            "$1::bigint, $2::text, $3::bigint, $4::bigint, $5::float8, $6::text, $7::text", count
        )
        parts.append(
            "summary AS (INSERT INTO summaries (tenant_id, user_id, session_id, "
            f"{sql.SUMMARY_COLUMNS}) SELECT $1, $2, $3, {values} "
            "WHERE EXISTS (SELECT 1 FROM session))"
        )
        count += 7
    if lease == "give":
        parts.append(
            f"given AS (DELETE FROM session_leases WHERE {sql.to_postgres(sql.KEY)} "
            f"AND token = ${count + 1} AND EXISTS (SELECT 1 FROM session))"
        )
    leased = "(SELECT count(*) FROM lease)" if lease == "take" else "1"
    current = f"(SELECT revision FROM sessions WHERE {sql.to_postgres(sql.KEY)})"
    return (
        "WITH " + ", ".join(parts) + f" SELECT w.n, {leased}, CASE WHEN w.n = 0 THEN "
        f"{current} END FROM (SELECT count(*) AS n FROM session) AS w"
    )


GROUP_WRITE = f"""
WITH w AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::float8[],
        $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[],
        $12::bigint[], $13::text[], $14::int[], $15::float8[])
    WITH ORDINALITY AS w(i, tenant_id, user_id, session_id, now, last_seq, appended, state,
        config, pending, revision, base, token, action, ttl, ord)),
lease AS (
    INSERT INTO session_leases AS l (tenant_id, user_id, session_id, token, expires_at)
    SELECT tenant_id, user_id, session_id, token, clock_timestamp() + make_interval(secs => ttl)
    FROM w WHERE action = 1 ORDER BY ord
    ON CONFLICT (tenant_id, user_id, session_id) DO UPDATE
        SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE l.expires_at < clock_timestamp() OR l.token = EXCLUDED.token
    RETURNING tenant_id, user_id, session_id),
ok AS (
    SELECT * FROM w
    WHERE action <> 1 OR EXISTS (SELECT 1 FROM lease WHERE {_KEY_OF.format(a="lease", b="w")})),
updated AS (
    UPDATE sessions AS s SET updated_at = ok.now,
        last_seq = CASE WHEN ok.appended > 0 THEN ok.last_seq ELSE s.last_seq END,
        message_count = s.message_count + ok.appended,
        state = COALESCE(ok.state::jsonb, s.state),
        config = COALESCE(ok.config::jsonb, s.config),
        pending = COALESCE(ok.pending::jsonb, s.pending),
        revision = ok.revision
    FROM ok
    WHERE ok.base <> 0 AND {_KEY_OF.format(a="s", b="ok")} AND s.revision = ok.base
    RETURNING ok.i),
inserted AS (
    INSERT INTO sessions ({_SESSION_COLUMNS})
    SELECT tenant_id, user_id, session_id, now, now, last_seq, appended,
        COALESCE(state::jsonb, '{{}}'), COALESCE(config::jsonb, '{{}}'),
        COALESCE(pending::jsonb, '[]'), revision
    FROM ok WHERE base = 0
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, user_id, session_id),
written AS (
    SELECT i FROM updated
    UNION ALL SELECT w.i FROM inserted JOIN w USING (tenant_id, user_id, session_id)),
appended AS (
    INSERT INTO messages (tenant_id, user_id, session_id, seq, run_id, role, created_at, data)
    SELECT w.tenant_id, w.user_id, w.session_id, m.seq, m.run_id, m.role, m.created_at, m.data
    FROM unnest($16::int[], $17::bigint[], $18::text[], $19::text[], $20::float8[],
        $21::bytea[]) AS m(i, seq, run_id, role, created_at, data)
    JOIN written USING (i) JOIN w USING (i)),
run AS (
    INSERT INTO runs ({sql.RUN_COLUMNS})
    SELECT r.run_id, w.tenant_id, w.user_id, w.session_id, r.status, r.started_at,
        r.finished_at, r.error, r.usage::jsonb, r.request_id
    FROM unnest($22::int[], $23::text[], $24::text[], $25::float8[], $26::float8[],
        $27::text[], $28::text[], $29::text[])
        AS r(i, run_id, status, started_at, finished_at, error, usage, request_id)
    JOIN written USING (i) JOIN w USING (i)
    ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status,
        finished_at = EXCLUDED.finished_at, error = EXCLUDED.error, usage = EXCLUDED.usage),
given AS (
    DELETE FROM session_leases AS l USING w, written
    WHERE written.i = w.i AND w.action = 2 AND {_KEY_OF.format(a="l", b="w")}
        AND l.token = w.token)
SELECT w.i, (written.i IS NOT NULL)::int,
    (w.action <> 1 OR EXISTS (SELECT 1 FROM lease WHERE {_KEY_OF.format(a="lease", b="w")}))::int,
    CASE WHEN written.i IS NULL THEN
        (SELECT s.revision FROM sessions AS s WHERE {_KEY_OF.format(a="s", b="w")}) END
FROM w LEFT JOIN written USING (i)
"""


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def group_args(writes: list[tuple[WriteBatch, str]]) -> list[Any]:
    """The 29 arrays of :data:`GROUP_WRITE` for ``writes`` (batches and lease actions).

    Rows go in key order, so that two processes' groups lock the lease and session
    rows they share in the same order (no deadlock between them); ``i`` is still
    each write's index in ``writes``."""
    columns: list[list[Any]] = [[] for _ in range(29)]
    (i_, tenant, user, session, now, last, count, state, config, pending, revision, base) = columns[
        :12
    ]
    token, action, ttl = columns[12:15]
    m_i, m_seq, m_run, m_role, m_at, m_data = columns[15:21]
    r_i, r_id, r_status, r_start, r_end, r_error, r_usage, r_request = columns[21:29]
    keys = [batch.key for batch, _ in writes]
    order = sorted(
        range(len(writes)), key=lambda j: (keys[j].tenant_id, keys[j].user_id, keys[j].session_id)
    )
    for index in order:
        batch, act = writes[index]
        key, messages, lease = batch.key, batch.messages, batch.lease
        i_.append(index)
        tenant.append(key.tenant_id)
        user.append(key.user_id)
        session.append(key.session_id)
        now.append(batch.now)
        last.append(messages[-1].seq if messages else batch.base_seq)
        count.append(len(messages))
        state.append(_json(batch.state))
        config.append(_json(batch.config))
        pending.append(None if batch.pending is None else _json(pending_to_json(batch.pending)))
        revision.append(batch.new_revision())
        base.append(batch.base_revision)
        token.append(lease.token if lease is not None and act else None)
        action.append(ACTIONS[act])
        ttl.append(lease.ttl if lease is not None else 0.0)
        for message in messages:
            m_i.append(index)
            m_seq.append(message.seq)
            m_run.append(message.run_id)
            m_role.append(message.role)
            m_at.append(message.created_at)
            m_data.append(encode_message(message))
        run = batch.run
        if run is not None:
            r_i.append(index)
            r_id.append(run.run_id)
            r_status.append(run.status)
            r_start.append(run.started_at)
            r_end.append(run.finished_at)
            r_error.append(run.error)
            r_usage.append(_json(run.usage.to_dict()))
            r_request.append(run.request_id)
    return columns


class GroupFailed(Exception):
    """A group statement failed at the server: none of it was done (each item goes alone)."""


class Grouped(Generic[Item, Result]):
    """At most one statement in flight: an item that finds none goes at once, by itself
    (``alone``); items arriving meanwhile go together in the next (``together``, which
    answers in their order, or raises :class:`GroupFailed`), one per ``key`` at most."""

    def __init__(
        self,
        alone: Callable[[Item], Awaitable[Result]],
        together: Callable[[list[Item]], Awaitable[list[Result]]],
        key: Callable[[Item], Hashable],
    ) -> None:
        self.alone = alone
        self.together = together
        self.key = key
        self.busy = False
        self.waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self.groups = 0  # statements that carried more than one item
        self.grouped = 0  # items they carried
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        if self.busy:
            future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
            self.waiting.append((item, future))
            return await future
        self.busy = True
        try:
            return await self.alone(item)
        finally:
            if self.waiting:  # they go together once this one is answered
                self._flusher = asyncio.get_running_loop().create_task(self._flush())
            else:
                self.busy = False

    async def _flush(self) -> None:
        try:
            while self.waiting:
                await self._send(self._take())
        finally:
            self.busy = False
            for _, future in self.waiting:  # cancelled (the store closing)
                future.cancel()
            self.waiting.clear()

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The next group: waiting items in arrival order, one per key at most."""
        group: list[tuple[Item, asyncio.Future[Result]]] = []
        later: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        for entry in self.waiting:
            item, future = entry
            if future.done():  # its caller was cancelled before it went: it never will
                continue
            key = self.key(item)
            if key in keys or len(group) >= MAX_GROUP:
                later.append(entry)
                continue
            keys.add(key)
            group.append(entry)
        self.waiting = later
        return group

    async def _send(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        if len(group) == 1:
            await self._one(*group[0])
            return
        try:
            results = await self.together([item for item, _ in group])
        except GroupFailed:
            await asyncio.gather(*(self._one(item, future) for item, future in group))
            return
        except Exception as exc:  # the database unavailable: every item of the group fails
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in group:
                future.cancel()
            raise
        self.groups += 1
        self.grouped += len(group)
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _one(self, item: Item, future: asyncio.Future[Result]) -> None:
        try:
            result = await self.alone(item)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)


Write = tuple[WriteBatch, str]
"""A batch to write and its lease action (``""``, ``"take"``, ``"give"``)."""


def write_key(write: Write) -> SessionKey:
    return write[0].key


async def write_together(
    call: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]], writes: list[Write]
) -> list[Outcome]:
    """``writes`` as one :data:`GROUP_WRITE` statement, run by ``call`` (the store's)."""
    args = group_args(writes)

    async def work(conn: Any) -> list[Any]:
        try:
            rows: list[Any] = await conn.fetch(GROUP_WRITE, *args)
        except asyncpg.PostgresError as exc:  # nothing of it was written
            raise GroupFailed from exc
        return rows

    rows = await call(work)
    outcomes: list[Outcome] = [(0, 0, None)] * len(writes)
    for row in rows:
        outcomes[row[0]] = (row[1], row[2], row[3])
    return outcomes
