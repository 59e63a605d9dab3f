"""One factory fixture runs the store conformance suite (``agenthost.testing``) on every backend.

Each test gets its own data: a fresh in-memory store, a fresh SQLite file, a fresh
PostgreSQL schema, or a fresh Redis key prefix. PostgreSQL and Redis come from
``AGENTHOST_TEST_POSTGRES`` / ``AGENTHOST_TEST_REDIS``; unset, those cases skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost.stores import MemoryStore, SQLiteStore
from agenthost.testing import StoreFactory
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
)

BACKENDS = ("memory", "sqlite", "sqlite-full", "postgres", "redis")


@pytest.fixture(params=BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """What :mod:`agenthost.testing` needs: new stores over this test's data."""
    name: str = request.param
    if name == "memory":
        shared = MemoryStore(max_messages=None)
        yield lambda: shared
    elif name in ("sqlite", "sqlite-full"):
        path = tmp_path / "store.db"
        durability = "full" if name == "sqlite-full" else "normal"
        yield lambda: SQLiteStore(path, durability=durability)
    elif name == "postgres":
        from agenthost.stores.postgres import PostgresStore

        url = postgres_url()
        schema = unique("conformance")
        yield lambda: PostgresStore(url, schema=schema, max_size=4)
        await drop_postgres_schema(url, schema)
    else:
        from agenthost.stores.redis import RedisStore

        url = redis_url()
        prefix = unique("agenthost-test")
        yield lambda: RedisStore(url, prefix=prefix)
        await drop_redis_prefix(url, prefix)
