"""RedisStore: sessions in Redis, for deployments that keep everything in one Redis.

Layout, under a key prefix ``P`` (default ``agenthost``) and a session id
``S`` = ``tenant \\x1f user \\x1f session`` (ids cannot contain control
characters, so the separator is unambiguous)::

    P:s:S        HASH    created_at, updated_at, last_seq, first_seq, message_count,
                         state, config, pending (JSON), revision
    P:m:S        LIST    the messages (orjson), oldest first: RPUSH appends in O(1),
                         LRANGE -N -1 reads the last N in O(N)
    P:r:S        ZSET    run ids by start time
    P:x:S        SET     run ids still ``running``
    P:run:ID     STRING  one run record (JSON)
    P:idx        ZSET    every session, scored by updated_at (retention, admin listing)
    P:idx:t:T    ZSET    a tenant's sessions;  P:idx:u:T\\x1fU  a user's sessions
    P:sum:S      LIST    the session's summaries (JSON), oldest first
    P:mo:O:…     a user's memories (see :mod:`agenthost.stores.redis_memory`)
    P:memidx:T   SET     users of tenant T with memories

A write is one Lua script, so it is atomic and its checks cannot race: the
batch is refused with :class:`~agenthost.errors.Conflict` unless the session is
at the batch's ``base_revision`` (and its ``base_seq``). A reply lost to a
dropped connection is retried by the client; the script recognises its own
earlier success (the session is at the batch's new revision) and does not
refuse it.

With ``retention`` (seconds) every key of a session expires that long after its
last write; the indexes drop expired members when read. Scripts touch keys
they derive at run time, so this store targets one Redis server (or a
primary/replica pair), not Redis Cluster.

URL options (removed before the URL reaches redis-py): ``prefix``, ``retention``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from agenthost import urls
from agenthost.errors import ConfigError, Conflict, MissingExtra, StoreUnavailable
from agenthost.keys import SessionKey
from agenthost.messages import Message, decode_message, encode_message
from agenthost.stores import redis_memory, runlog_redis
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
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ModuleNotFoundError as exc:
    raise MissingExtra("redis", "Redis support (store, coordination)") from exc

T = TypeVar("T")
SEP = "\x1f"
# lock_ttl and lock_wait configure the Redis lock coordinator (agenthost.coordination).
_OUR_OPTIONS = ("prefix", "retention", "lock_ttl", "lock_wait")

# KEYS: s m r x run idx idx_t idx_u sum
# ARGV: 1 sid, 2 now, 3 base_seq, 4 flags (s=state c=config p=pending), 5 state, 6 config,
#       7 pending, 8 run_id ('' = none), 9 run json, 10 run started_at, 11 run status,
#       12 ttl ms ('0' = keep), 13 base revision ('' = unchecked, '0' = must not exist),
#       14 new revision, 15 summary json ('' = none), 16.. messages
# Revisions are compared as strings: Lua numbers are doubles.
WRITE = """
local s, m = KEYS[1], KEYS[2]
local n = #ARGV - 15
local current = '0'
if redis.call('EXISTS', s) == 1 then current = redis.call('HGET', s, 'revision') or '1' end
if current == ARGV[14] then return 0 end
if ARGV[13] ~= '' and ARGV[13] ~= current then
  return redis.error_reply('CONFLICT session changed since revision ' .. ARGV[13])
end
if ARGV[15] ~= '' then
  local newest = redis.call('LINDEX', KEYS[9], -1)
  if newest and cjson.decode(newest).version == cjson.decode(ARGV[15]).version then
    return redis.error_reply('CONFLICT the session has this summary already')
  end
end
local base = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', s, 'last_seq') or '0')
if n > 0 then
  if base ~= last then
    if last >= base + n then
      local first = tonumber(redis.call('HGET', s, 'first_seq') or '1')
      if redis.call('LINDEX', m, base + 1 - first) == ARGV[16] then return 0 end
    end
    return redis.error_reply('CONFLICT session is at seq ' .. last)
  end
  local length = redis.call('RPUSH', m, unpack(ARGV, 16))
  if length == n then redis.call('HSET', s, 'first_seq', base + 1) end
  redis.call('HSET', s, 'last_seq', base + n)
  redis.call('HINCRBY', s, 'message_count', n)
end
redis.call('HSETNX', s, 'created_at', ARGV[2])
redis.call('HSET', s, 'updated_at', ARGV[2], 'revision', ARGV[14])
local flags = ARGV[4]
if string.find(flags, 's', 1, true) then redis.call('HSET', s, 'state', ARGV[5]) end
if string.find(flags, 'c', 1, true) then redis.call('HSET', s, 'config', ARGV[6]) end
if string.find(flags, 'p', 1, true) then redis.call('HSET', s, 'pending', ARGV[7]) end
if ARGV[15] ~= '' then redis.call('RPUSH', KEYS[9], ARGV[15]) end
local ttl = tonumber(ARGV[12])
if ARGV[8] ~= '' then
  if ttl > 0 then
    redis.call('SET', KEYS[5], ARGV[9], 'PX', ttl)
  else
    redis.call('SET', KEYS[5], ARGV[9])
  end
  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[8])
  if ARGV[11] == 'running' then
    redis.call('SADD', KEYS[4], ARGV[8])
  else
    redis.call('SREM', KEYS[4], ARGV[8])
  end
end
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[2], ARGV[1])
if ttl > 0 then
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
  if redis.call('EXISTS', KEYS[9]) == 1 then redis.call('PEXPIRE', KEYS[9], ttl) end
end
return 0
"""

# KEYS: s m r x idx idx_t idx_u sum;  ARGV: sid, run key prefix, before ('' = any age)
DELETE_SESSION = """
local s = KEYS[1]
if ARGV[3] ~= '' then
  local updated = redis.call('HGET', s, 'updated_at')
  if updated and tonumber(updated) >= tonumber(ARGV[3]) then return 0 end
end
for _, run_id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[2] .. run_id)
end
local existed = redis.call('DEL', s)
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[8])
for i = 5, 7 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return existed
"""

# KEYS: s m;  ARGV: after_seq, limit (-1 = all)
MESSAGES = """
local first = tonumber(redis.call('HGET', KEYS[1], 'first_seq') or '1')
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then start = 0 end
local limit = tonumber(ARGV[2])
if limit == 0 then return {} end
local stop = -1
if limit > 0 then stop = start + limit - 1 end
return redis.call('LRANGE', KEYS[2], start, stop)
"""

_SESSION_FIELDS = (
    "created_at",
    "updated_at",
    "last_seq",
    "message_count",
    "state",
    "config",
    "pending",
    "revision",
)


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split our options off a ``redis://`` URL: ``(url for redis-py, options)``.

    The one parser is :func:`agenthost.urls.parse_url`, which also checks the options.
    """
    parsed = urls.parse_url(url)
    return parsed.driver_url, dict(parsed.options)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***", 1)))


def connect(url: str, *, socket_timeout: float = 5.0) -> aioredis.Redis:
    """A client that fails fast (two quick retries) when Redis is away, and reconnects."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(socket_timeout, 2.0),
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2),
        health_check_interval=15,
    )


def unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"Redis at {redact(url)} is unavailable: {type(exc).__name__}: {exc}")


def session_id_of(key: SessionKey) -> str:
    return f"{key.tenant_id}{SEP}{key.user_id}{SEP}{key.session_id}"


def text(value: Any) -> str:
    """redis-py answers bytes (we never ask it to decode); ids are UTF-8."""
    return value.decode() if isinstance(value, bytes) else str(value)


def key_of(sid: Any) -> SessionKey:
    tenant_id, user_id, session_id = text(sid).split(SEP)
    return SessionKey(tenant_id, user_id, session_id)


def _json(value: Any, default: Any) -> Any:
    return default if value is None else orjson.loads(value)


def _summary(value: bytes | None) -> SessionSummary | None:
    return None if value is None else SessionSummary.from_dict(orjson.loads(value))


def _record(
    key: SessionKey, values: list[bytes | None], summary: SessionSummary | None = None
) -> SessionRecord:
    created, updated, last_seq, count, state, config, pending, revision = values
    return SessionRecord(
        key,
        float(created or 0),
        float(updated or 0),
        int(last_seq or 0),
        int(count or 0),
        _json(state, {}),
        _json(config, {}),
        pending_from_json(_json(pending, [])),
        int(revision or 1),  # sessions written before revisions existed are at 1
        summary,
    )


def _run_json(run: RunRecord) -> bytes:
    k = run.key
    return orjson.dumps(
        {
            "run_id": run.run_id,
            "tenant_id": k.tenant_id,
            "user_id": k.user_id,
            "session_id": k.session_id,
            "status": run.status,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "error": run.error,
            "usage": run.usage.to_dict(),
            "request_id": run.request_id,
        }
    )


async def _exists_and(c: aioredis.Redis, name: str, field: str) -> list[Any]:
    async with c.pipeline(transaction=True) as pipe:
        pipe.exists(name)
        pipe.hget(name, field)
        result: list[Any] = await pipe.execute()
        return result


def _run_record(data: Any) -> RunRecord:
    return RunRecord.from_dict(orjson.loads(data))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore(redis_memory.RedisMemories, runlog_redis.RedisRunLog):
    """``RedisStore("redis://host:6379/0", retention=30 * 86400)``; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        retention: float | None = None,
        prefix: str | None = None,
        socket_timeout: float = 5.0,
    ) -> None:
        self.url, options = parse_url(url)
        self.prefix = prefix if prefix is not None else options.get("prefix", "agenthost")
        if not self.prefix or SEP in self.prefix:
            raise ConfigError("Redis key prefix must be a non-empty string")
        if retention is None and options.get("retention"):
            retention = float(options["retention"])
        if retention is not None and retention <= 0:
            raise ConfigError("retention must be a positive number of seconds")
        self.retention = retention
        self.socket_timeout = socket_timeout
        self._client: aioredis.Redis | None = None
        self._write: Any = None
        self._delete: Any = None
        self._messages: Any = None
        self._runlog: runlog_redis.Scripts | None = None

    def __repr__(self) -> str:
        return f"RedisStore({redact(self.url)!r}, prefix={self.prefix!r})"

    # -- keys ------------------------------------------------------------------

    def _session_keys(self, sid: str) -> list[str]:
        p = self.prefix
        return [f"{p}:s:{sid}", f"{p}:m:{sid}", f"{p}:r:{sid}", f"{p}:x:{sid}"]

    def _index_keys(self, tenant_id: str, user_id: str) -> list[str]:
        p = self.prefix
        return [f"{p}:idx", f"{p}:idx:t:{tenant_id}", f"{p}:idx:u:{tenant_id}{SEP}{user_id}"]

    def _index(self, tenant_id: str | None, user_id: str | None) -> str:
        """The narrowest index for a scope (a user of any tenant: the global one)."""
        if tenant_id is None:
            return f"{self.prefix}:idx"
        if user_id is None:
            return f"{self.prefix}:idx:t:{tenant_id}"
        return f"{self.prefix}:idx:u:{tenant_id}{SEP}{user_id}"

    def _summary_key(self, sid: str) -> str:
        return f"{self.prefix}:sum:{sid}"

    # -- connection --------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        client = connect(self.url, socket_timeout=self.socket_timeout)
        self._write = client.register_script(WRITE)
        self._delete = client.register_script(DELETE_SESSION)
        self._messages = client.register_script(MESSAGES)
        self._register_memory_scripts(client)
        self._runlog = runlog_redis.Scripts(client)
        self._client = client  # before the first await: a concurrent open() returns early
        try:
            await self.ping()
        except StoreUnavailable:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreUnavailable("RedisStore is not open")
        return self._client

    async def _call(self, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        client = self.client
        try:
            return await fn(client)
        except ResponseError as exc:
            if str(exc).startswith("CONFLICT"):
                raise Conflict(str(exc)) from None
            raise StoreUnavailable(f"Redis refused a request: {exc}") from exc
        except (RedisConnectionError, RedisTimeoutError, RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc

    async def ping(self) -> None:
        await self._call(lambda c: c.ping())

    def _prune_before(self) -> float | None:
        return None if self.retention is None else time.time() - self.retention

    # -- the hot path --------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> None:
        k = batch.key
        sid = session_id_of(k)
        run = batch.run
        flags = (
            ("s" if batch.state is not None else "")
            + ("c" if batch.config is not None else "")
            + ("p" if batch.pending is not None else "")
        )
        keys = [
            *self._session_keys(sid),
            f"{self.prefix}:run:{run.run_id if run else ''}",
            *self._index_keys(k.tenant_id, k.user_id),
            self._summary_key(sid),
        ]
        summary = batch.summary
        args: list[Any] = [
            sid,
            repr(batch.now),
            batch.base_seq,
            flags,
            orjson.dumps(batch.state) if batch.state is not None else b"",
            orjson.dumps(batch.config) if batch.config is not None else b"",
            orjson.dumps(pending_to_json(batch.pending)) if batch.pending is not None else b"",
            run.run_id if run else "",
            _run_json(run) if run else b"",
            repr(run.started_at) if run else "0",
            run.status if run else "",
            int(self.retention * 1000) if self.retention else 0,
            "" if batch.base_revision is None else str(batch.base_revision),
            str(batch.new_revision()),
            b"" if summary is None else orjson.dumps(summary.to_dict()),
            *(encode_message(m) for m in batch.messages),
        ]
        await self._call(lambda c: self._write(keys=keys, args=args, client=c))

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        sid = session_id_of(key)
        s, m, _r, x = self._session_keys(sid)

        async def work(c: aioredis.Redis) -> list[Any]:
            async with c.pipeline(transaction=True) as pipe:
                pipe.hmget(s, _SESSION_FIELDS)
                if window > 0:
                    pipe.lrange(m, -window, -1)
                pipe.smembers(x)
                pipe.lindex(self._summary_key(sid), -1)
                results: list[Any] = await pipe.execute()
                return results

        results = await self._call(work)
        values = results[0]
        if values[0] is None:
            return None
        rows = results[1] if window > 0 else []
        running = sorted(text(r) for r in results[-2])
        record = _record(key, values, _summary(results[-1]))
        return Snapshot(record, [decode_message(r) for r in rows], running)

    async def last_seq(self, key: SessionKey) -> int:
        s = self._session_keys(session_id_of(key))[0]
        value = await self._call(lambda c: c.hget(s, "last_seq"))
        return int(value) if value is not None else 0

    async def revision(self, key: SessionKey) -> int:
        s = self._session_keys(session_id_of(key))[0]
        exists, value = await self._call(lambda c: _exists_and(c, s, "revision"))
        return 0 if not exists else int(value or 1)

    # -- reading -------------------------------------------------------------------

    async def messages(
        self, key: SessionKey, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Message]:
        s, m, _r, _x = self._session_keys(session_id_of(key))
        args = [after_seq, -1 if limit is None else limit]
        rows = await self._call(lambda c: self._messages(keys=[s, m], args=args, client=c))
        return [decode_message(r) for r in rows]

    async def _prune(self, c: aioredis.Redis, index: str) -> None:
        before = self._prune_before()
        if before is not None:
            await c.zremrangebyscore(index, "-inf", f"({before!r}")

    async def sessions(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        if limit == 0:
            return []

        async def work(c: aioredis.Redis) -> list[SessionRecord]:
            members = await self._members(c, tenant_id, user_id, offset, limit)
            async with c.pipeline(transaction=False) as pipe:
                for sid in members:
                    pipe.hmget(self._session_keys(text(sid))[0], _SESSION_FIELDS)
                rows = await pipe.execute()
            return [
                _record(key_of(sid), values)
                for sid, values in zip(members, rows, strict=True)
                if values[0] is not None  # expired since the index was pruned
            ]

        return await self._call(work)

    async def count_sessions(
        self, *, tenant_id: str | None = None, user_id: str | None = None
    ) -> int:
        async def work(c: aioredis.Redis) -> int:
            if tenant_id is None and user_id is not None:
                return len(await self._members(c, tenant_id, user_id, 0, None))
            index = self._index(tenant_id, user_id)
            await self._prune(c, index)
            return int(await c.zcard(index))

        return await self._call(work)

    async def _members(
        self,
        c: aioredis.Redis,
        tenant_id: str | None,
        user_id: str | None,
        offset: int,
        limit: int | None,
    ) -> list[Any]:
        """Session ids of a scope, most recently updated first."""
        index = self._index(tenant_id, user_id)
        await self._prune(c, index)
        if tenant_id is None and user_id is not None:  # rare (admin): filter every session
            everything: list[Any] = await c.zrevrange(index, 0, -1)
            mine = [sid for sid in everything if key_of(sid).user_id == user_id]
            return mine[offset : None if limit is None else offset + limit]
        stop = -1 if limit is None else offset + limit - 1
        members: list[Any] = await c.zrevrange(index, offset, stop)
        return members

    async def runs(self, key: SessionKey, *, limit: int = 50) -> list[RunRecord]:
        r = self._session_keys(session_id_of(key))[2]

        async def work(c: aioredis.Redis) -> list[RunRecord]:
            ids: list[Any] = await c.zrevrange(r, 0, limit - 1)
            if not ids:
                return []
            rows = await c.mget([f"{self.prefix}:run:{text(i)}" for i in ids])
            return [_run_record(row) for row in rows if row is not None]

        return await self._call(work)

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._call(lambda c: c.get(f"{self.prefix}:run:{run_id}"))
        return _run_record(row) if row is not None else None

    # -- deleting ------------------------------------------------------------------

    async def _delete_session(self, c: aioredis.Redis, key: SessionKey, before: str = "") -> int:
        sid = session_id_of(key)
        keys = [*self._session_keys(sid), *self._index_keys(key.tenant_id, key.user_id)]
        keys.append(self._summary_key(sid))
        args = [sid, f"{self.prefix}:run:", before]
        return int(await self._delete(keys=keys, args=args, client=c))

    async def delete(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        check_scope(tenant_id, user_id, session_id)

        async def work(c: aioredis.Redis) -> int:
            if tenant_id is None:
                return await self._delete_everything(c)
            await runlog_redis.erase_runs(self, c, tenant_id, user_id, session_id)
            if session_id is not None:
                assert user_id is not None
                return await self._delete_session(c, SessionKey(tenant_id, user_id, session_id))
            deleted = 0
            members: list[Any] = await c.zrange(self._index(tenant_id, user_id), 0, -1)
            for sid in members:
                deleted += await self._delete_session(c, key_of(sid))
            # after the sessions: a fenced memory write either came first or is refused
            await self._erase_memories(c, tenant_id, user_id)
            return deleted

        return await self._call(work)

    async def _delete_everything(self, c: aioredis.Redis) -> int:
        await self._prune(c, f"{self.prefix}:idx")
        count = int(await c.zcard(f"{self.prefix}:idx"))
        pattern = _glob_escape(self.prefix) + ":*"
        batch: list[bytes] = []
        async for name in c.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                await c.unlink(*batch)
                batch = []
        if batch:
            await c.unlink(*batch)
        return count

    async def delete_idle(self, *, before: float, limit: int) -> int:
        async def work(c: aioredis.Redis) -> int:
            index = f"{self.prefix}:idx"
            members: list[Any] = await c.zrangebyscore(
                index, "-inf", f"({before!r}", start=0, num=limit
            )
            deleted = 0
            for sid in members:  # the script skips a session written since it was listed
                deleted += await self._delete_session(c, key_of(sid), repr(before))
            return deleted

        return await self._call(work)

    async def summaries(self, key: SessionKey) -> list[SessionSummary]:
        name = self._summary_key(session_id_of(key))
        rows: list[Any] = await self._call(lambda c: c.lrange(name, 0, -1))
        return [SessionSummary.from_dict(orjson.loads(r)) for r in rows]
