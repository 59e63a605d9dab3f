"""Long-term memory in Redis: one user's memories and an inverted index of their terms.

Keys, under the store's prefix ``P`` and the owner's token ``O``
(:func:`agenthost.stores.search.owner_token`)::

    P:mo:O:m:ID    HASH    one memory (its fields, its distinct terms as JSON)
    P:mo:O:z       ZSET    memory ids by created_at (listing, counting, the cap)
    P:mo:O:meta    HASH    memory id -> "document-length updated-at" (ranking)
    P:mo:O:n       STRING  the total length of the user's documents (ranking)
    P:mo:O:t:TERM  ZSET    memory ids that contain TERM, scored by its frequency

Each write is one Lua script, so its checks (the fence on the session's
revision, the cap, the memory's own revision) and its index changes are atomic.
A search is one script too: it scores the query's postings with BM25, as FTS5
does, and returns the best memories with their fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from agenthost.errors import QuotaExceeded, StoreUnavailable
from agenthost.stores import search
from agenthost.stores.base import MemoryFence, MemoryRecord

if TYPE_CHECKING:
    import redis.asyncio as aioredis

SEP = "\x1f"
FIELDS = (
    "memory_id",
    "tenant_id",
    "user_id",
    "text",
    "kind",
    "tags",
    "created_at",
    "updated_at",
    "session_id",
    "run_id",
    "revision",
)

_KEPT = frozenset({"memory_id", "tenant_id", "user_id", "created_at", "session_id", "run_id"})

# KEYS: 1 memory hash, 2 z, 3 meta, 4 n, 5 fence session hash, 6 memidx
# ARGV: 1 op (add | replace | delete), 2 id, 3 fence revision ('' = none), 4 cap ('' = none),
#       5 base revision (replace), 6 term key prefix, 7 created_at, 8 meta ("length updated"),
#       9 length, 10 user id, 11 number of hash field/value items, then those items,
#       then term/frequency pairs
WRITE = """
local h, z, meta, n = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, id, prefix = ARGV[1], ARGV[2], ARGV[6]
if ARGV[3] ~= '' then
  local current = nil
  if redis.call('EXISTS', KEYS[5]) == 1 then
    current = redis.call('HGET', KEYS[5], 'revision') or '1'
  end
  if current ~= ARGV[3] then
    return redis.error_reply('CONFLICT session changed since revision ' .. ARGV[3])
  end
end
local function unindex()
  local old = redis.call('HGET', h, 'terms')
  if old then
    for _, term in ipairs(cjson.decode(old)) do redis.call('ZREM', prefix .. term, id) end
  end
  local was = redis.call('HGET', meta, id)
  if was then redis.call('DECRBY', n, tonumber(string.match(was, '^(%d+)'))) end
end
if op == 'delete' then
  if redis.call('EXISTS', h) == 0 then return 0 end
  unindex()
  redis.call('DEL', h)
  redis.call('ZREM', z, id)
  redis.call('HDEL', meta, id)
  return 1
end
if op == 'add' then
  if redis.call('EXISTS', h) == 1 then
    return redis.error_reply('CONFLICT memory ' .. id .. ' exists already')
  end
  if ARGV[4] ~= '' and redis.call('ZCARD', z) >= tonumber(ARGV[4]) then
    return redis.error_reply('QUOTA ' .. ARGV[4])
  end
  redis.call('ZADD', z, ARGV[7], id)
  redis.call('SADD', KEYS[6], ARGV[10])
else
  if redis.call('HGET', h, 'revision') ~= ARGV[5] then return 0 end
  unindex()
  redis.call('HDEL', h, 'embedding')
end
local count = tonumber(ARGV[11])
redis.call('HSET', h, unpack(ARGV, 12, 11 + count))
for i = 12 + count, #ARGV, 2 do redis.call('ZADD', prefix .. ARGV[i], ARGV[i + 1], id) end
redis.call('HSET', meta, id, ARGV[8])
redis.call('INCRBY', n, ARGV[9])
return 1
"""

# KEYS: 1 z, 2 meta, 3 n;  ARGV: 1 limit, 2 term key prefix, 3 memory key prefix,
#       4 fields (JSON list), 5.. terms
SEARCH = """
local total = redis.call('ZCARD', KEYS[1])
if total == 0 then return {} end
local average = tonumber(redis.call('GET', KEYS[3]) or '0') / total
if average < 1 then average = 1 end
local postings, ids = {}, {}
for i = 5, #ARGV do
  local entries = redis.call('ZRANGE', ARGV[2] .. ARGV[i], 0, -1, 'WITHSCORES')
  local df = #entries / 2
  if df > 0 then
    local idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
    for j = 1, #entries, 2 do
      local id = entries[j]
      if postings[id] == nil then postings[id] = {}; ids[#ids + 1] = id end
      table.insert(postings[id], {idf, tonumber(entries[j + 1])})
    end
  end
end
if #ids == 0 then return {} end
local metas = {}
for first = 1, #ids, 1000 do  -- unpack() has a stack limit: HMGET in slices
  local slice = redis.call('HMGET', KEYS[2], unpack(ids, first, math.min(first + 999, #ids)))
  for _, value in ipairs(slice) do metas[#metas + 1] = value end
end
local score, updated = {}, {}
for k, id in ipairs(ids) do
  local length, at = string.match(metas[k] or '1 0', '^(%S+) (%S+)$')
  local norm = 1.2 * (0.25 + 0.75 * tonumber(length) / average)
  local sum = 0
  for _, p in ipairs(postings[id]) do sum = sum + p[1] * p[2] * 2.2 / (p[2] + norm) end
  score[id], updated[id] = sum, tonumber(at)
end
table.sort(ids, function(a, b)
  if score[a] ~= score[b] then return score[a] > score[b] end
  if updated[a] ~= updated[b] then return updated[a] > updated[b] end
  return a < b
end)
local fields = cjson.decode(ARGV[4])
local out = {}
for k = 1, math.min(tonumber(ARGV[1]), #ids) do
  local id = ids[k]
  out[#out + 1] = string.format('%.17g', score[id])
  out[#out + 1] = redis.call('HMGET', ARGV[3] .. id, unpack(fields))
end
return out
"""

# KEYS: 1 z, 2 meta, 3 n, 4 memidx;  ARGV: 1 owner key prefix (P:mo:O:), 2 user id
ERASE = """
local terms = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = ARGV[1] .. 'm:' .. id
  local old = redis.call('HGET', h, 'terms')
  if old then for _, term in ipairs(cjson.decode(old)) do terms[term] = true end end
  redis.call('DEL', h)
end
for term in pairs(terms) do redis.call('DEL', ARGV[1] .. 't:' .. term) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[2])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(value: Any) -> str | None:
    return None if value is None or value == b"" else _text(value)


def _record(values: Sequence[Any]) -> MemoryRecord:
    embedding = values[11] if len(values) > 11 else None
    return MemoryRecord(
        _text(values[0]),
        _text(values[1]),
        _text(values[2]),
        _text(values[3]),
        _optional(values[4]),
        orjson.loads(values[5]) if values[5] else [],
        float(values[6]),
        float(values[7]),
        _optional(values[8]),
        _optional(values[9]),
        int(values[10]),
        search.unpack_vector(embedding),
    )


class RedisMemories:
    """The memory half of :class:`~agenthost.stores.redis.RedisStore`."""

    prefix: str

    @property
    def client(self) -> aioredis.Redis:
        """The store's client."""
        raise NotImplementedError

    async def _call(self, fn: Any) -> Any:
        """Run ``fn(client)``, translating errors (the store's)."""
        raise NotImplementedError

    def _register_memory_scripts(self, client: aioredis.Redis) -> None:
        self._memory_write = client.register_script(WRITE)
        self._memory_search = client.register_script(SEARCH)
        self._memory_erase = client.register_script(ERASE)

    def _owner(self, tenant_id: str, user_id: str) -> str:
        return f"{self.prefix}:mo:{search.owner_token(tenant_id, user_id)}:"

    def _write_keys(
        self, tenant_id: str, user_id: str, memory_id: str, fence: MemoryFence | None
    ) -> list[str]:
        owner = self._owner(tenant_id, user_id)
        session = ""
        if fence is not None:
            k = fence.key
            session = f"{self.prefix}:s:{k.tenant_id}{SEP}{k.user_id}{SEP}{k.session_id}"
        return [
            f"{owner}m:{memory_id}",
            f"{owner}z",
            f"{owner}meta",
            f"{owner}n",
            session or f"{owner}nofence",
            f"{self.prefix}:memidx:{tenant_id}",
        ]

    async def _put(
        self,
        op: str,
        record: MemoryRecord,
        *,
        fence: MemoryFence | None,
        cap: int | None = None,
        base_revision: int = 0,
    ) -> int:
        document = search.document_terms(record.text, record.kind, record.tags)
        counts = Counter(document)
        fields: list[bytes | str] = [
            "memory_id",
            record.memory_id,
            "tenant_id",
            record.tenant_id,
            "user_id",
            record.user_id,
            "text",
            record.text,
            "kind",
            record.kind or "",
            "tags",
            orjson.dumps(record.tags),
            "created_at",
            repr(record.created_at),
            "updated_at",
            repr(record.updated_at),
            "session_id",
            record.session_id or "",
            "run_id",
            record.run_id or "",
            "revision",
            str(record.revision),
            "terms",
            orjson.dumps(list(counts)),
        ]
        if record.embedding is not None:
            fields += ["embedding", search.pack_vector(record.embedding)]
        if op == "replace":  # what a memory was made from and when stays
            fields = [
                item
                for i in range(0, len(fields), 2)
                if fields[i] not in _KEPT
                for item in fields[i : i + 2]
            ]
        args: list[bytes | str | int | float] = [
            op,
            record.memory_id,
            "" if fence is None else str(fence.revision),
            "" if cap is None else str(cap),
            str(base_revision),
            self._owner(record.tenant_id, record.user_id) + "t:",
            repr(record.created_at),
            f"{len(document)} {record.updated_at!r}",
            len(document),
            record.user_id,
            len(fields),
            *fields,
        ]
        for term, frequency in counts.items():
            args += [term, frequency]
        keys = self._write_keys(record.tenant_id, record.user_id, record.memory_id, fence)
        try:
            result = await self._call(lambda c: self._memory_write(keys=keys, args=args, client=c))
        except StoreUnavailable as exc:  # how the store reports a script's own error
            if "QUOTA" in exc.message:
                raise QuotaExceeded(f"this user has {cap} memories, the most allowed") from None
            raise
        return int(result)

    async def add_memory(
        self, record: MemoryRecord, *, fence: MemoryFence | None = None, cap: int | None = None
    ) -> None:
        await self._put("add", record, fence=fence, cap=cap)

    async def replace_memory(
        self, record: MemoryRecord, *, base_revision: int, fence: MemoryFence | None = None
    ) -> bool:
        return await self._put("replace", record, fence=fence, base_revision=base_revision) == 1

    async def delete_memory(
        self, tenant_id: str, user_id: str, memory_id: str, *, fence: MemoryFence | None = None
    ) -> bool:
        keys = self._write_keys(tenant_id, user_id, memory_id, fence)
        owner = self._owner(tenant_id, user_id)
        fenced = "" if fence is None else str(fence.revision)
        args: list[str | int] = ["delete", memory_id, fenced, "", "0", owner + "t:", "0", "", 0]
        args += [user_id, 0]
        result = await self._call(lambda c: self._memory_write(keys=keys, args=args, client=c))
        return int(result) == 1

    async def get_memory(self, tenant_id: str, user_id: str, memory_id: str) -> MemoryRecord | None:
        name = f"{self._owner(tenant_id, user_id)}m:{memory_id}"
        values = await self._call(lambda c: c.hmget(name, FIELDS))
        return None if values[0] is None else _record(values)

    async def list_memories(
        self,
        tenant_id: str,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        embeddings: bool = False,
    ) -> list[MemoryRecord]:
        if limit == 0:
            return []
        owner = self._owner(tenant_id, user_id)
        fields = [*FIELDS, "embedding"] if embeddings else list(FIELDS)

        async def work(c: aioredis.Redis) -> list[MemoryRecord]:
            stop = -1 if limit is None else offset + limit - 1
            ids: list[Any] = await c.zrevrange(f"{owner}z", offset, stop)
            async with c.pipeline(transaction=False) as pipe:
                for memory_id in ids:
                    pipe.hmget(f"{owner}m:{_text(memory_id)}", fields)
                rows = await pipe.execute()
            return [_record(values) for values in rows if values[0] is not None]

        result: list[MemoryRecord] = await self._call(work)
        return result

    async def count_memories(self, tenant_id: str, user_id: str) -> int:
        return int(await self._call(lambda c: c.zcard(f"{self._owner(tenant_id, user_id)}z")))

    async def search_memories(
        self,
        tenant_id: str,
        user_id: str,
        terms: Sequence[str],
        *,
        limit: int,
        embeddings: bool = False,
    ) -> list[tuple[MemoryRecord, float]]:
        if not terms or limit < 1:
            return []
        owner = self._owner(tenant_id, user_id)
        fields = [*FIELDS, "embedding"] if embeddings else list(FIELDS)
        keys = [f"{owner}z", f"{owner}meta", f"{owner}n"]
        args: list[bytes | str | int] = [limit, f"{owner}t:", f"{owner}m:", orjson.dumps(fields)]
        args += dict.fromkeys(terms)
        rows = await self._call(lambda c: self._memory_search(keys=keys, args=args, client=c))
        return [
            (_record(rows[i + 1]), float(rows[i]))
            for i in range(0, len(rows), 2)
            if rows[i + 1][0] is not None
        ]

    async def _erase_memories(self, c: aioredis.Redis, tenant_id: str, user_id: str | None) -> None:
        memidx = f"{self.prefix}:memidx:{tenant_id}"
        users = [user_id] if user_id is not None else [_text(u) for u in await c.smembers(memidx)]
        for user in users:
            owner = self._owner(tenant_id, user)
            keys = [f"{owner}z", f"{owner}meta", f"{owner}n", memidx]
            await self._memory_erase(keys=keys, args=[owner, user], client=c)
