"""Usage in Redis (a Redis store): one hash per tenant and day, ``HINCRBY`` per counter.

Layout under ``P`` = ``<prefix>-usage`` (the store URL's ``prefix``)::

    P:T\\x1fD   HASH   "user\\x1fagent\\x1fmodel\\x1fcounter" -> count, for tenant T on day D
    P:index   ZSET   "T\\x1fD" scored by the day's number (days since the epoch)
    P:batch:B STRING a flush already added (kept a day)
    P:erased:T\x1fU  STRING  user U of tenant T was erased (kept ``ERASURE_FENCE``)

A flush is one Lua script: unless its batch id is already recorded, it records it
and applies every ``HINCRBY``, so flushes of many processes add up exactly and a
retried flush is not added twice; a user with an erasure fence is counted as
``(erased)``. Erasing a user is one script too: it sets the fence and moves every
field of the user in the tenant's hashes to the same field of ``(erased)``. Reads
fetch the hashes of the days asked and group them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from redis.exceptions import RedisError

from agenthost.stores.redis import connect, parse_url, unavailable
from agenthost.usage.rows import (
    COUNTERS,
    ERASED_USER,
    ERASURE_FENCE,
    Dimension,
    UsageRow,
    group,
)

SEP = "\x1f"

# KEYS[1] the batch marker, KEYS[2] the index; ARGV[1] the hash prefix, ARGV[2] the fence
# prefix, ARGV[3] the erased user, then per group: the hash's name, its day number, the
# fence's name, the user, n, and n (field after the user, increment) pairs.
ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end
local i = 4
while i <= #ARGV do
  local name, day, user, n = ARGV[i], ARGV[i + 1], ARGV[i + 3], tonumber(ARGV[i + 4])
  if redis.call('EXISTS', ARGV[2] .. ARGV[i + 2]) == 1 then user = ARGV[3] end
  redis.call('ZADD', KEYS[2], day, name)
  for j = 1, n do
    redis.call('HINCRBY', ARGV[1] .. name, user .. ARGV[i + 3 + 2 * j], ARGV[i + 4 + 2 * j])
  end
  i = i + 5 + 2 * n
end
return 1
"""

# KEYS[1] the index, KEYS[2] the fence; ARGV[1] the hash prefix, ARGV[2] "tenant<SEP>",
# ARGV[3] "user<SEP>", ARGV[4] "(erased)<SEP>", ARGV[5] the fence's seconds.
ERASE = """
redis.call('SET', KEYS[2], '1', 'EX', ARGV[5])
local tenant, user, erased = ARGV[2], ARGV[3], ARGV[4]
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(name, 1, #tenant) == tenant then
    local hash = ARGV[1] .. name
    local fields = redis.call('HGETALL', hash)
    for k = 1, #fields, 2 do
      local field = fields[k]
      if string.sub(field, 1, #user) == user then
        redis.call('HINCRBY', hash, erased .. string.sub(field, #user + 1), fields[k + 1])
        redis.call('HDEL', hash, field)
      end
    end
  end
end
return 1
"""


def _day_number(day: str) -> int:
    return date.fromisoformat(day).toordinal()


class RedisUsageLedger:
    shared = True

    def __init__(self, url: str) -> None:
        self.url, options = parse_url(url)
        self.prefix = f"{options.get('prefix') or 'agenthost'}-usage"
        self._client: Any = None
        self._add: Any = None
        self._erase: Any = None

    async def open(self) -> None:
        if self._client is None:
            self._client = connect(self.url)
            self._add = self._client.register_script(ADD)
            self._erase = self._client.register_script(ERASE)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        await self.open()
        args: list[Any] = [f"{self.prefix}:", f"{self.prefix}:erased:", ERASED_USER]
        for row in rows:
            after = f"{SEP}{row.agent}{SEP}{row.model}{SEP}"
            pairs = [(after + c, getattr(row, c)) for c in COUNTERS if getattr(row, c)]
            args += [
                f"{row.tenant_id}{SEP}{row.day}",
                _day_number(row.day or ""),
                f"{row.tenant_id}{SEP}{row.user_id}",
                row.user_id,
                len(pairs),
            ]
            for field, value in pairs:
                args += [field, value]
        keys = [f"{self.prefix}:batch:{batch}", f"{self.prefix}:index"]
        try:
            await self._add(keys=keys, args=args, client=self._client)
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        await self.open()
        try:
            names = await self._client.zrangebyscore(
                f"{self.prefix}:index", _day_number(since), _day_number(until)
            )
            names = [n.decode() for n in names]
            if tenant_id is not None:
                names = [n for n in names if n.partition(SEP)[0] == tenant_id]
            async with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(f"{self.prefix}:{name}")
                hashes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc
        rows: dict[tuple[str, ...], UsageRow] = {}
        for name, fields in zip(names, hashes, strict=True):
            tenant, _, day = name.partition(SEP)
            for field, value in fields.items():
                user, agent, model, counter = field.decode().split(SEP)
                if user_id is not None and user != user_id:
                    continue
                key = (day, tenant, user, agent, model)
                row = rows.get(key)
                if row is None:
                    row = rows[key] = UsageRow(*key)
                setattr(row, counter, int(value))
        return group(list(rows.values()), group_by)

    async def erase_user(self, *, tenant_id: str, user_id: str) -> None:
        if user_id == ERASED_USER:
            return
        await self.open()
        keys = [f"{self.prefix}:index", f"{self.prefix}:erased:{tenant_id}{SEP}{user_id}"]
        args = [
            f"{self.prefix}:",
            tenant_id + SEP,
            user_id + SEP,
            ERASED_USER + SEP,
            int(ERASURE_FENCE),
        ]
        try:
            await self._erase(keys=keys, args=args, client=self._client)
        except (RedisError, OSError) as exc:
            raise unavailable(self.url, exc) from exc
