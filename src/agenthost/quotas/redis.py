"""Quota counters in Redis, shared by every process: one Lua script per admission.

Layout under ``P`` = ``<prefix>-quota`` (the URL's ``prefix`` option, default
``agenthost``)::

    P:rate:S      ZSET    request tokens, scored by the time they stop counting (ms)
    P:turns:S     ZSET    leases of running turns, scored by their expiry (ms)
    P:sessions:S  ZSET    live sessions, scored by when they go idle (ms)
    P:tokens:S\\x1fD  STRING  tokens used on day D (INCRBY), expires after that day
    P:overrides   HASH    an admin's overrides (JSON), by scope; P:overrides-version INCR

Times are the Redis server's (``TIME``), so the machines' clocks do not matter.
The admission script first checks every limit, then counts in all of them, so a
refused request is counted nowhere. Like the store, this targets one Redis server
(scripts derive no keys but touch several), not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from agenthost.quotas.base import SEP, Check, Refusal
from agenthost.quotas.limits import Limits, Overrides, TenantLimits
from agenthost.stores.redis import parse_url, redact, unavailable

NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

ADMIT = (
    NOW
    + """
for i = 1, #KEYS do
  local kind, limit = ARGV[4*i-3], tonumber(ARGV[4*i-2])
  local member, ms = ARGV[4*i-1], tonumber(ARGV[4*i])
  if kind == 'tokens' then
    if tonumber(redis.call('GET', KEYS[i]) or '0') >= limit then return {i, ms} end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    if not redis.call('ZSCORE', KEYS[i], member) and redis.call('ZCARD', KEYS[i]) >= limit then
      if kind == 'turns' then return {i, 1000} end
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      return {i, tonumber(oldest[2]) - now}
    end
  end
end
for i = 1, #KEYS do
  if ARGV[4*i-3] ~= 'tokens' then
    local ms = tonumber(ARGV[4*i])
    redis.call('ZADD', KEYS[i], now + ms, ARGV[4*i-1])
    if redis.call('PTTL', KEYS[i]) < ms then redis.call('PEXPIRE', KEYS[i], ms) end
  end
end
return false
"""
)

RENEW = (
    NOW
    + """
for i = 1, #KEYS do
  local ms = tonumber(ARGV[2*i])
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', now + ms, ARGV[2*i-1]) == 1 then
    if redis.call('PTTL', KEYS[i]) < ms then redis.call('PEXPIRE', KEYS[i], ms) end
  end
end
return 0
"""
)

ADD_TOKENS = """
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[i + 1])
end
return 0
"""


MAX_CONNECTIONS = 32
"""Admissions beyond this many at once wait for a connection instead of failing."""


def connect(url: str) -> aioredis.Redis:
    """A client whose pool waits (up to 5 s) for a free connection under a burst."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=5.0,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2),
        health_check_interval=15,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisQuotaBackend:
    shared = True

    def __init__(self, url: str, *, prefix: str | None = None) -> None:
        self.url, options = parse_url(url)
        self.prefix = f"{prefix or options.get('prefix') or 'agenthost'}-quota"
        self._client: Any = None
        self._admit: Any = None
        self._renew: Any = None
        self._add: Any = None

    def __repr__(self) -> str:
        return f"RedisQuotaBackend({redact(self.url)!r})"

    async def open(self) -> None:
        if self._client is None:
            client = connect(self.url)
            self._admit = client.register_script(ADMIT)
            self._renew = client.register_script(RENEW)
            self._add = client.register_script(ADD_TOKENS)
            self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _key(self, check: Check) -> str:
        return f"{self.prefix}:{check.kind}:{check.scope}"

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        if self._client is None:
            await self.open()
        try:
            return await script(keys=keys, args=args, client=self._client)
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        args: list[Any] = []
        for check in checks:
            args += [check.kind, check.limit, check.member, _ms(check.seconds)]
        refused = await self._call(self._admit, [self._key(c) for c in checks], args)
        if not refused:
            return None
        index, wait_ms = int(refused[0]) - 1, int(refused[1])
        return Refusal(index, max(0, wait_ms) / 1000)

    async def release(self, checks: Sequence[Check]) -> None:
        if self._client is None:
            await self.open()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for check in checks:
                    pipe.zrem(self._key(check), check.member)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc

    async def renew(self, checks: Sequence[Check]) -> None:
        args: list[Any] = []
        for check in checks:
            args += [check.member, _ms(check.seconds)]
        await self._call(self._renew, [self._key(c) for c in checks], args)

    async def add_tokens(self, checks: Sequence[Check], tokens: int) -> None:
        # a day's counter outlives its day by an hour: turns that began before midnight
        expiries = [int(c.seconds) + 3600 for c in checks]
        await self._call(self._add, [self._key(c) for c in checks], [tokens, *expiries])

    # -- overrides -------------------------------------------------------------------

    @property
    def _overrides_key(self) -> str:
        return f"{self.prefix}:overrides"

    async def overrides(self) -> Overrides:
        if self._client is None:
            await self.open()
        try:
            raw = await self._client.hgetall(self._overrides_key)
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc
        tenants: dict[str, TenantLimits] = {}
        users: dict[tuple[str, str], Limits] = {}
        for field, value in raw.items():
            kind, _, rest = field.decode().partition(SEP)
            data = orjson.loads(value)
            if kind == "t":
                tenants[rest] = TenantLimits.of(data)
            elif kind == "u":
                tenant_id, _, user_id = rest.partition(SEP)
                users[(tenant_id, user_id)] = Limits.of(data)
        return Overrides(tenants, users)

    async def overrides_version(self) -> str:
        if self._client is None:
            await self.open()
        try:
            value = await self._client.get(f"{self._overrides_key}-version")
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc
        return value.decode() if value else "0"

    async def _set(self, field: str, data: dict[str, Any] | None) -> None:
        if self._client is None:
            await self.open()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if data is None:
                    pipe.hdel(self._overrides_key, field)
                else:
                    pipe.hset(self._overrides_key, field, orjson.dumps(data))
                pipe.incr(f"{self._overrides_key}-version")
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc

    async def set_tenant(self, tenant_id: str, limits: TenantLimits | None) -> None:
        await self._set(f"t{SEP}{tenant_id}", None if limits is None else limits.to_dict())

    async def set_user(self, tenant_id: str, user_id: str, limits: Limits | None) -> None:
        field = f"u{SEP}{tenant_id}{SEP}{user_id}"
        await self._set(field, None if limits is None else limits.to_dict())
