"""Fixtures for the scale-out tests: a fresh PostgreSQL schema or Redis prefix per test.

The URLs carry the namespace as a query option (``?schema=...`` / ``?prefix=...``),
so stores, coordinators and ``agenthost serve`` processes given the URL all share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from support.processes import PrivatePostgres, ServeProcess
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
    with_query,
)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL store URL whose tables live in a schema of their own."""
    base = postgres_url()
    schema = unique("scaleout")
    yield with_query(base, schema=schema)
    await drop_postgres_schema(base, schema)


@pytest.fixture
async def redis_store_url() -> AsyncIterator[str]:
    """A Redis store URL with a key prefix of its own (locks go under ``<prefix>-lock``)."""
    base = redis_url()
    prefix = unique("agenthost-test")
    yield with_query(base, prefix=prefix)
    await drop_redis_prefix(base, prefix)
    await drop_redis_prefix(base, f"{prefix}-lock")


@pytest.fixture
async def servers() -> AsyncIterator[list[ServeProcess]]:
    """The processes a test starts (``servers.append(await ServeProcess(...).start())``)."""
    started: list[ServeProcess] = []
    try:
        yield started
    finally:
        for server in started:
            await server.stop()


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        await asyncio.to_thread(cluster.init)
        await asyncio.to_thread(cluster.start)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.destroy)
