"""One suite for every quota backend (memory, Redis, PostgreSQL): the same counting,
the same refusals, and for the shared ones, exact limits under concurrent admissions
from two clients (as two processes would be)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from agenthost.quotas import Check, Limits, MemoryQuotaBackend, QuotaBackend, TenantLimits
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
    with_query,
)

KINDS = ("memory", "redis", "postgres")


@dataclass
class Backends:
    name: str
    make: Callable[[], QuotaBackend]  # a new client of the same counters


@pytest.fixture(params=KINDS)
async def backends(request: pytest.FixtureRequest) -> AsyncIterator[Backends]:
    name: str = request.param
    if name == "memory":
        shared = MemoryQuotaBackend()
        yield Backends(name, lambda: shared)
    elif name == "redis":
        from agenthost.quotas.redis import RedisQuotaBackend

        base = redis_url()
        prefix = unique("quota-test")
        yield Backends(name, lambda: RedisQuotaBackend(with_query(base, prefix=prefix)))
        await drop_redis_prefix(base, f"{prefix}-quota")
    else:
        from agenthost.quotas.postgres import PostgresQuotaBackend

        base = postgres_url()
        schema = unique("quota")
        yield Backends(name, lambda: PostgresQuotaBackend(with_query(base, schema=schema)))
        await drop_postgres_schema(base, schema)


@pytest.fixture
async def backend(backends: Backends) -> AsyncIterator[QuotaBackend]:
    opened = backends.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def token() -> str:
    return os.urandom(8).hex()


def rate(scope: str, limit: int, seconds: float = 60.0) -> Check:
    return Check("rate", scope, limit, token(), seconds, "user")


def turns(scope: str, limit: int, member: str | None = None, seconds: float = 60.0) -> Check:
    return Check("turns", scope, limit, member or token(), seconds, "user")


async def test_admits_up_to_the_limit_then_says_when_to_retry(backend: QuotaBackend) -> None:
    for _ in range(3):
        assert await backend.admit([rate("u1", 3)]) is None
    refusal = await backend.admit([rate("u1", 3)])
    assert refusal is not None and refusal.index == 0
    assert refusal.retry_after is not None and 58 < refusal.retry_after <= 60
    assert await backend.admit([rate("u2", 3)]) is None  # scopes are apart


async def test_a_refused_admission_counts_in_no_check(backend: QuotaBackend) -> None:
    held = turns("busy", 1)
    assert await backend.admit([held]) is None
    for _ in range(3):
        refusal = await backend.admit([rate("tenant", 2), turns("busy", 1)])
        assert refusal is not None and refusal.index == 1
        assert refusal.retry_after == 1
    await backend.release([held])
    assert await backend.admit([rate("tenant", 2), turns("busy", 1)]) is None
    assert await backend.admit([rate("tenant", 2)]) is None  # the refusals took no slot
    assert await backend.admit([rate("tenant", 2)]) is not None


async def test_leases_release_renew_and_expire(backend: QuotaBackend) -> None:
    lease = turns("t", 1, seconds=60)
    assert await backend.admit([lease]) is None
    await backend.renew([lease])
    assert await backend.admit([turns("t", 1)]) is not None  # renewed, still held
    await backend.release([lease])
    await backend.release([lease])  # twice is harmless
    short = turns("t", 1, seconds=0.2)  # its holder "crashes": never released
    assert await backend.admit([short]) is None
    deadline = asyncio.get_running_loop().time() + 10
    while await backend.admit([turns("t", 1)]) is not None:
        assert asyncio.get_running_loop().time() < deadline, "a lease never expired"
        await asyncio.sleep(0.05)


async def test_a_member_already_counted_is_admitted_again(backend: QuotaBackend) -> None:
    def session(name: str) -> Check:
        return Check("sessions", "user", 2, name, 3600, "user")

    assert await backend.admit([session("s1")]) is None
    assert await backend.admit([session("s2")]) is None
    assert await backend.admit([session("s1")]) is None
    refusal = await backend.admit([session("s3")])
    assert refusal is not None and refusal.retry_after is not None
    assert 3500 < refusal.retry_after <= 3600


async def test_tokens_are_added_and_checked_per_day(backend: QuotaBackend) -> None:
    today = Check("tokens", "u\x1f20000", 100, "", 3600, "user")
    tomorrow = Check("tokens", "u\x1f20001", 100, "", 3600, "user")
    assert await backend.admit([today]) is None
    await backend.add_tokens([today], 60)
    assert await backend.admit([today]) is None
    await backend.add_tokens([today], 60)
    refusal = await backend.admit([rate("r", 5), today])
    assert refusal is not None and refusal.index == 1 and refusal.retry_after == 3600
    assert await backend.admit([tomorrow]) is None


async def test_overrides_are_shared_and_versioned(backends: Backends) -> None:
    first, second = backends.make(), backends.make()
    await first.open()
    await second.open()
    try:
        before = await second.overrides_version()
        await first.set_tenant("acme", TenantLimits(user=Limits(requests_per_minute=5)))
        await first.set_user("acme", "bot", Limits(requests_per_minute=0, tokens_per_day=9))
        assert await second.overrides_version() != before
        seen = await second.overrides()
        assert seen.tenants["acme"].user == Limits(requests_per_minute=5)
        assert seen.users[("acme", "bot")] == Limits(0, None, 9, None)
        version = await second.overrides_version()
        await first.set_user("acme", "bot", None)
        assert await second.overrides_version() != version
        assert (await second.overrides()).users == {}
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("backends", ["redis", "postgres"], indirect=True)
async def test_200_concurrent_admissions_from_two_clients_admit_exactly_the_limit(
    backends: Backends,
) -> None:
    clients = [backends.make(), backends.make()]
    for client in clients:
        await client.open()
    try:
        checks = [[rate("crowd", 50), turns("crowd-turns", 500)] for _ in range(200)]
        results = await asyncio.gather(*(clients[n % 2].admit(c) for n, c in enumerate(checks)))
        assert sum(r is None for r in results) == 50
        assert all(r.index == 0 for r in results if r is not None)
        # the refused took no turn lease: 450 more fit exactly
        more = await asyncio.gather(
            *(clients[n % 2].admit([turns("crowd-turns", 500)]) for n in range(460))
        )
        assert sum(r is None for r in more) == 450
    finally:
        for client in clients:
            await client.close()
