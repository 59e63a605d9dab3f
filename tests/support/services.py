"""The real PostgreSQL and Redis the backend tests run against, and per-test namespaces.

URLs come from ``AGENTHOST_TEST_POSTGRES`` / ``AGENTHOST_TEST_REDIS``; when one is
unset, tests that need it skip with the reason. Each test works in its own
PostgreSQL schema or Redis key prefix, dropped afterwards, so tests never see
each other's data (nor anyone else's on the same servers).
"""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_VARIABLE = "AGENTHOST_TEST_POSTGRES"
REDIS_VARIABLE = "AGENTHOST_TEST_REDIS"


def service_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        what = "PostgreSQL" if variable == POSTGRES_VARIABLE else "Redis"
        pytest.skip(f"{variable} is not set: this test needs a real {what} server URL")
    return url


def postgres_url() -> str:
    return service_url(POSTGRES_VARIABLE)


def redis_url() -> str:
    return service_url(REDIS_VARIABLE)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def with_query(url: str, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def drop_postgres_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def drop_redis_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        names = [name async for name in client.scan_iter(match=f"{prefix}:*", count=500)]
        if names:
            await client.unlink(*names)
    finally:
        await client.aclose()
