"""One factory fixture runs the store conformance suite against every backend.

Each test gets its own data: a fresh in-memory store, a fresh SQLite file, a fresh
PostgreSQL schema, or a fresh Redis key prefix. PostgreSQL and Redis come from
``AGENTHOST_TEST_POSTGRES`` / ``AGENTHOST_TEST_REDIS``; unset, those cases skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agenthost.stores import MemoryStore, SessionStore, SQLiteStore
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
)

BACKENDS = ("memory", "sqlite", "sqlite-full", "postgres", "redis")


@dataclass
class Backend:
    """``make()`` builds a new, unopened store over this test's data."""

    name: str
    make: Callable[[], SessionStore]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name: str = request.param
    if name == "memory":
        shared = MemoryStore(max_messages=None)
        yield Backend(name, lambda: shared)
    elif name in ("sqlite", "sqlite-full"):
        path = tmp_path / "store.db"
        durability = "full" if name == "sqlite-full" else "normal"
        yield Backend(name, lambda: SQLiteStore(path, durability=durability))
    elif name == "postgres":
        from agenthost.stores.postgres import PostgresStore

        url = postgres_url()
        schema = unique("conformance")
        yield Backend(name, lambda: PostgresStore(url, schema=schema, max_size=4))
        await drop_postgres_schema(url, schema)
    else:
        from agenthost.stores.redis import RedisStore

        url = redis_url()
        prefix = unique("agenthost-test")
        yield Backend(name, lambda: RedisStore(url, prefix=prefix))
        await drop_redis_prefix(url, prefix)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SessionStore]:
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
