"""B8: what quotas add to a turn. Sequential in-process turns (memory store, offline
model), each timed, for: no quotas at all; quotas that limit only another tenant
(no counter is touched); a per-user rate limit counted in Redis; a rate limit plus
a concurrent-turns lease in Redis (admission, then release); a rate limit counted
in PostgreSQL. ``added_p50_us`` is the median turn's latency over the first variant's.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agenthost.agent import Agent
from agenthost.host import Host
from agenthost.quotas import Limits, Overrides, QuotaBackend, Quotas, TenantLimits
from agenthost.stores.memory import MemoryStore
from agenthost_bench.inprocess import Metrics, Results, Scale, percentile, prompt, quiet_heap

HIGH = 1_000_000_000  # a limit never reached: every turn is counted, none refused


def _quotas(variant: str, redis: str | None, postgres: str | None) -> Quotas | None:
    backend: QuotaBackend
    if variant == "no quotas":
        return None
    if variant == "other tenant limited":
        other = Overrides(tenants={"other": TenantLimits(user=Limits(requests_per_minute=1))})
        return Quotas(overrides=other)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    if variant.startswith("redis"):
        from agenthost.quotas.redis import RedisQuotaBackend

        assert redis
        backend = RedisQuotaBackend(redis, prefix=prefix)
    else:
        from agenthost.quotas.postgres import PostgresQuotaBackend

        assert postgres
        backend = PostgresQuotaBackend(postgres, schema=prefix.replace("-", "_"))
    turns = HIGH if variant.endswith("+ turns") else None
    return Quotas(user=Limits(requests_per_minute=HIGH, concurrent_turns=turns), backend=backend)


@asynccontextmanager
async def _host(quotas: Quotas | None) -> AsyncIterator[Host]:
    host = Host(
        Agent(name="bench"),
        store=MemoryStore(max_messages=None),
        cleanup_interval=None,
        quotas=quotas,
    )
    async with host:
        try:
            yield host
        finally:
            await _drop(quotas)


async def _drop(quotas: Quotas | None) -> None:
    """Remove what a Redis or PostgreSQL variant left behind."""
    backend = None if quotas is None else quotas.backend
    prefix = getattr(backend, "prefix", None)
    schema = getattr(backend, "schema", None)
    if prefix and getattr(backend, "url", None):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(backend.url)  # type: ignore[union-attr]
        try:
            names = [n async for n in client.scan_iter(match=f"{prefix}:*", count=500)]
            if names:
                await client.unlink(*names)
        finally:
            await client.aclose()
    elif schema and getattr(backend, "dsn", None):
        import asyncpg

        conn = await asyncpg.connect(backend.dsn)  # type: ignore[union-attr]
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def timed_turns(quotas: Quotas | None, scale: Scale) -> list[float]:
    async with _host(quotas) as host:
        for turn in range(5):  # warm: connections, scripts, the schema
            await host.run(prompt(0, turn), user_id="warm-up")
        users = [f"user-{u}" for u in range(scale.users)]
        quiet_heap()
        seconds = []
        for turn in range(scale.turns):
            for u, user_id in enumerate(users):
                began = time.perf_counter()
                await host.run(prompt(u, turn), user_id=user_id)
                seconds.append(time.perf_counter() - began)
        return seconds


def _metrics(seconds: list[float], baseline: float | None) -> Metrics:
    p50 = statistics.median(seconds) * 1e6
    out = {
        "p50_us": p50,
        "p99_us": percentile(seconds, 99) * 1e6,
        "mean_us": statistics.fmean(seconds) * 1e6,
    }
    out["added_p50_us"] = p50 - baseline if baseline is not None else 0.0
    return out


def variants(redis: str | None, postgres: str | None) -> list[str]:
    names = ["no quotas", "other tenant limited"]
    if redis:
        names += ["redis rate", "redis rate + turns"]
    if postgres:
        names += ["postgres rate"]
    return names


async def b8(scale: Scale, redis: str | None, postgres: str | None) -> Results:
    results: Results = {}
    baseline: float | None = None
    for variant in variants(redis, postgres):
        seconds = await timed_turns(_quotas(variant, redis, postgres), scale)
        results[variant] = _metrics(seconds, baseline)
        if baseline is None:
            baseline = results[variant]["p50_us"]
    return results
