"""The run-log protocol (:mod:`agenthost.stores.runlog`) on Redis, for RedisStore.

Layout, under the store's prefix ``P`` (ids cannot contain ``\\x1f``)::

    P:log:RUN          HASH    tenant_id, user_id, session_id, last_seq, updated_at, expires_at
    P:ev:RUN           LIST    the run's events (orjson); index i holds seq i + 1
    P:logs:T\\x1fU       SET     the user's run logs, as ``session \\x1f run`` (for erasure)
    P:idem:T\\x1fU\\x1fK   HASH    one idempotency record: fingerprint, run_id, session_id,
                               created_at, expires_at, result
    P:idems:T\\x1fU      SET     the user's idempotency keys, as ``session \\x1f key``
    P:cancel:RUN       STRING  a cancel request (its time)

Claims and appends are Lua scripts, so their checks cannot race. Everything
expires by itself (``PEXPIRE``): a log ``retention`` seconds after its last
append, a record when its key expires; :meth:`purge_runs` has nothing to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis

from agenthost.keys import SessionKey
from agenthost.stores import runlog as rl
from agenthost.stores.runlog import EventRow, IdempotencyRecord, RunLog, RunLogHeader

T = TypeVar("T")
SEP = "\x1f"

_EXTEND = """
local function extend(name, ms)
  local left = redis.call('PTTL', name)
  if left < tonumber(ms) then redis.call('PEXPIRE', name, ms) end
end
"""

# KEYS: log, logs index, idem, idems index
# ARGV: 1 tenant, 2 user, 3 session, 4 now, 5 log expires_at, 6 log ttl ms, 7 log member,
#       8 claim ('1'/'0'), 9 fingerprint, 10 run_id, 11 created_at, 12 key expires_at,
#       13 key ttl ms, 14 key member
OPEN = (
    _EXTEND
    + """
if ARGV[8] == '1' then
  local expires = redis.call('HGET', KEYS[3], 'expires_at')
  if expires and tonumber(expires) > tonumber(ARGV[4]) then
    return redis.call('HGETALL', KEYS[3])
  end
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'fingerprint', ARGV[9], 'run_id', ARGV[10], 'session_id', ARGV[3],
    'created_at', ARGV[11], 'expires_at', ARGV[12])
  redis.call('PEXPIRE', KEYS[3], ARGV[13])
  redis.call('SADD', KEYS[4], ARGV[14])
  extend(KEYS[4], ARGV[13])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'tenant_id', ARGV[1], 'user_id', ARGV[2], 'session_id', ARGV[3],
    'last_seq', 0, 'updated_at', ARGV[4], 'expires_at', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('SADD', KEYS[2], ARGV[7])
  extend(KEYS[2], ARGV[6])
end
return false
"""
)

# KEYS: log, events;  ARGV: 1 first seq, 2 last seq, 3 now, 4 expires_at, 5 ttl ms,
# 6 the logs index name up to the owner (``P:logs:``), 7.. the events.
# The owner's index is derived from the log, so it always outlives the logs it lists.
APPEND = (
    _EXTEND
    + """
local head = redis.call('HMGET', KEYS[1], 'last_seq', 'tenant_id', 'user_id')
if not head[1] or tonumber(head[1]) ~= tonumber(ARGV[1]) - 1 then return 0 end
redis.call('RPUSH', KEYS[2], unpack(ARGV, 7))
redis.call('HSET', KEYS[1], 'last_seq', ARGV[2], 'updated_at', ARGV[3], 'expires_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
extend(ARGV[6] .. head[2] .. '\\031' .. head[3], ARGV[5])
return 1
"""
)

# KEYS: idem;  ARGV: run_id, result ('' = release: delete the record)
SETTLE = """
if redis.call('HGET', KEYS[1], 'run_id') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
else redis.call('HSET', KEYS[1], 'result', ARGV[2]) end
return 1
"""


class Scripts:
    """The scripts, registered on the store's client when it opens."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.open = client.register_script(OPEN)
        self.append = client.register_script(APPEND)
        self.settle = client.register_script(SETTLE)


class _Redis(Protocol):
    prefix: str
    _runlog: Scripts | None

    async def _call(self, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T: ...


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _record(tenant_id: str, user_id: str, key: str, fields: dict[str, Any]) -> IdempotencyRecord:
    result = fields.get("result")
    return IdempotencyRecord(
        tenant_id,
        user_id,
        key,
        _text(fields["fingerprint"]),
        _text(fields["run_id"]),
        _text(fields["session_id"]),
        float(fields["created_at"]),
        float(fields["expires_at"]),
        None if result is None else rl.decode_event(result),
    )


def _names(r: _Redis, tenant_id: str, user_id: str) -> tuple[str, str]:
    owner = f"{tenant_id}{SEP}{user_id}"
    return f"{r.prefix}:logs:{owner}", f"{r.prefix}:idems:{owner}"


def _scripts(r: _Redis) -> Scripts:
    if r._runlog is None:
        from agenthost.errors import StoreUnavailable

        raise StoreUnavailable("RedisStore is not open")
    return r._runlog


class RedisRunLog:
    """Mixed into :class:`~agenthost.stores.redis.RedisStore`."""

    async def open_run_log(
        self: _Redis,
        run_id: str,
        key: SessionKey,
        *,
        now: float,
        retention: float,
        claim: IdempotencyRecord | None = None,
    ) -> IdempotencyRecord | None:
        logs, idems = _names(self, key.tenant_id, key.user_id)
        p = self.prefix
        c = claim
        idem = f"{p}:idem:{c.tenant_id}{SEP}{c.user_id}{SEP}{c.key}" if c else f"{p}:idem:-"
        args: list[Any] = [
            key.tenant_id,
            key.user_id,
            key.session_id,
            repr(now),
            repr(now + retention),
            _ms(retention),
            f"{key.session_id}{SEP}{run_id}",
            "1" if c else "0",
            c.fingerprint if c else "",
            c.run_id if c else "",
            repr(c.created_at) if c else "",
            repr(c.expires_at) if c else "",
            _ms(c.expires_at - now) if c else 0,
            f"{c.session_id}{SEP}{c.key}" if c else "",
        ]
        keys = [f"{p}:log:{run_id}", logs, idem, idems]
        scripts = _scripts(self)
        held = await self._call(lambda r: scripts.open(keys=keys, args=args, client=r))
        if not held or c is None:
            return None
        return _record(c.tenant_id, c.user_id, c.key, _pairs(held))

    async def append_run_events(
        self: _Redis, run_id: str, events: Sequence[EventRow], *, now: float, retention: float
    ) -> bool:
        log = f"{self.prefix}:log:{run_id}"
        if not events:
            return bool(await self._call(lambda r: r.exists(log)))
        first, last = events[0][0], events[-1][0]
        keys = [log, f"{self.prefix}:ev:{run_id}"]
        args: list[Any] = [first, last, repr(now), repr(now + retention), _ms(retention)]
        args += [f"{self.prefix}:logs:", *(rl.encode_event(data) for _seq, data in events)]
        scripts = _scripts(self)
        moved = await self._call(lambda r: scripts.append(keys=keys, args=args, client=r))
        if int(moved) == 1:
            return True
        # A reply lost to a dropped connection is retried by the client: our own append.
        stored = await RedisRunLog.read_run_log(self, run_id, after_seq=first - 1)
        return rl.already_appended(stored, events)

    async def read_run_log(
        self: _Redis, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> RunLog | None:
        log, events = f"{self.prefix}:log:{run_id}", f"{self.prefix}:ev:{run_id}"
        start = max(after_seq, 0)
        stop = -1 if limit is None else start + limit - 1

        async def work(r: aioredis.Redis) -> list[Any]:
            async with r.pipeline(transaction=True) as pipe:
                pipe.hgetall(log)
                if limit != 0:
                    pipe.lrange(events, start, stop)
                result: list[Any] = await pipe.execute()
                return result

        fields, *found = await self._call(work)
        rows = found[0] if found else []
        if not fields:
            return None
        f = {_text(k): _text(v) for k, v in fields.items()}
        header = RunLogHeader(
            run_id,
            SessionKey(f["tenant_id"], f["user_id"], f["session_id"]),
            int(f["last_seq"]),
            float(f["updated_at"]),
            float(f["expires_at"]),
        )
        return RunLog(header, [(start + i + 1, rl.decode_event(raw)) for i, raw in enumerate(rows)])

    async def finish_idempotency(
        self: _Redis,
        tenant_id: str,
        user_id: str,
        key: str,
        *,
        run_id: str,
        result: dict[str, Any],
    ) -> None:
        name = f"{self.prefix}:idem:{tenant_id}{SEP}{user_id}{SEP}{key}"
        args: list[str | bytes] = [run_id, rl.encode_event(result)]
        scripts = _scripts(self)
        await self._call(lambda r: scripts.settle(keys=[name], args=args, client=r))

    async def release_idempotency(
        self: _Redis, tenant_id: str, user_id: str, key: str, *, run_id: str
    ) -> None:
        name = f"{self.prefix}:idem:{tenant_id}{SEP}{user_id}{SEP}{key}"
        scripts = _scripts(self)
        await self._call(lambda r: scripts.settle(keys=[name], args=[run_id, ""], client=r))

    async def request_cancel(self: _Redis, run_id: str, *, now: float) -> None:
        name = f"{self.prefix}:cancel:{run_id}"
        ttl = _ms(rl.CANCEL_REQUEST_TTL)
        await self._call(lambda r: r.set(name, repr(now), nx=True, px=ttl))

    async def cancel_requests(self: _Redis, run_ids: Sequence[str]) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()
        found = await self._call(lambda r: r.mget([f"{self.prefix}:cancel:{i}" for i in ids]))
        return {run_id for run_id, value in zip(ids, found, strict=True) if value is not None}

    async def purge_runs(self: _Redis, *, now: float) -> int:
        return 0  # every key expires by itself


async def erase_runs(
    store: _Redis,
    client: aioredis.Redis,
    tenant_id: str,
    user_id: str | None,
    session_id: str | None,
) -> None:
    """Inside the store's delete: the run logs and keys of the deleted sessions go too."""
    p = store.prefix
    if user_id is None:
        owners: list[tuple[str, str]] = []
        async for name in client.scan_iter(match=f"{p}:logs:{tenant_id}{SEP}*", count=500):
            owners.append((tenant_id, _text(name).rsplit(SEP, 1)[1]))
        async for name in client.scan_iter(match=f"{p}:idems:{tenant_id}{SEP}*", count=500):
            owners.append((tenant_id, _text(name).rsplit(SEP, 1)[1]))
    else:
        owners = [(tenant_id, user_id)]
    for tenant, user in set(owners):
        logs, idems = _names(store, tenant, user)
        doomed: list[str] = []
        for index, kind in ((logs, "log"), (idems, "idem")):
            for member in await client.smembers(index):
                session, _, name = _text(member).partition(SEP)
                if session_id is not None and session != session_id:
                    continue
                if kind == "log":
                    doomed += [f"{p}:log:{name}", f"{p}:ev:{name}"]
                else:
                    doomed.append(f"{p}:idem:{tenant}{SEP}{user}{SEP}{name}")
                await client.srem(index, member)
        if doomed:
            await client.unlink(*doomed)
