"""One suite for every usage ledger (memory, SQLite, PostgreSQL, Redis): increments add
up exactly from concurrent clients, a batch counts once, reads filter and group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agenthost.usage import MemoryUsageLedger, SQLiteUsageLedger, UsageLedger, UsageRow
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
    with_query,
)

KINDS = ("memory", "sqlite", "postgres", "redis")
ALL = {"since": "2024-01-01", "until": "2024-12-31"}


@dataclass
class Ledgers:
    name: str
    make: Callable[[], UsageLedger]  # a new client of the same data


@pytest.fixture(params=KINDS)
async def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledgers]:
    name: str = request.param
    if name == "memory":
        shared = MemoryUsageLedger()
        yield Ledgers(name, lambda: shared)
    elif name == "sqlite":
        path = str(tmp_path / "usage.db")
        yield Ledgers(name, lambda: SQLiteUsageLedger(path))
    elif name == "postgres":
        from agenthost.usage import PostgresUsageLedger

        base = postgres_url()
        schema = unique("usage")
        yield Ledgers(name, lambda: PostgresUsageLedger(with_query(base, schema=schema)))
        await drop_postgres_schema(base, schema)
    else:
        from agenthost.usage.redis import RedisUsageLedger

        base = redis_url()
        prefix = unique("usage-test")
        yield Ledgers(name, lambda: RedisUsageLedger(with_query(base, prefix=prefix)))
        await drop_redis_prefix(base, f"{prefix}-usage")


def row(day: str, tenant: str, user: str, model: str = "m", turns: int = 1) -> UsageRow:
    return UsageRow(day, tenant, user, "agent", model, turns, 0, 10 * turns, turns)


async def test_reads_filter_by_days_tenant_and_user_and_group(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    await ledger.open()
    try:
        await ledger.add(
            [
                row("2024-03-01", "acme", "alice"),
                row("2024-03-01", "acme", "bob", model="n"),
                row("2024-03-02", "acme", "alice", turns=2),
                row("2024-03-02", "other", "alice"),
                row("2025-01-01", "acme", "alice"),  # outside the range read
            ],
            batch="b1",
        )
        (total,) = await ledger.query(**ALL)
        assert (total.turns, total.input_tokens, total.output_tokens) == (5, 50, 5)
        by_tenant = await ledger.query(**ALL, group_by=["tenant_id"])
        assert [(r.tenant_id, r.turns) for r in by_tenant] == [("acme", 4), ("other", 1)]
        alice = await ledger.query(**ALL, tenant_id="acme", user_id="alice", group_by=["day"])
        assert [(r.day, r.turns) for r in alice] == [("2024-03-01", 1), ("2024-03-02", 2)]
        models = await ledger.query(
            since="2024-03-01", until="2024-03-01", group_by=["model", "user_id"]
        )
        assert [(r.model, r.user_id, r.turns) for r in models] == [
            ("m", "alice", 1),
            ("n", "bob", 1),
        ]
        assert models[0].day is None and models[0].tenant_id is None
        assert await ledger.query(since="2023-01-01", until="2023-12-31") == []
        assert await ledger.query(**ALL, tenant_id="nobody", group_by=["day"]) == []
    finally:
        await ledger.close()


async def test_a_batch_counts_once(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    await ledger.open()
    try:
        rows = [row("2024-05-05", "t", "u")]
        await ledger.add(rows, batch="same")
        await ledger.add(rows, batch="same")  # a retry whose first reply was lost
        await ledger.add(rows, batch="next")
        (total,) = await ledger.query(**ALL)
        assert total.turns == 2
    finally:
        await ledger.close()


async def test_concurrent_flushes_of_two_clients_add_up_exactly(ledgers: Ledgers) -> None:
    clients = [ledgers.make(), ledgers.make()]
    for client in clients:
        await client.open()
    try:
        flushes = [
            clients[n % 2].add(
                [row("2024-06-01", "t", f"u{k}") for k in range(5)]
                + [row("2024-06-02", "t", "u0", turns=2)],
                batch=f"batch-{n}",
            )
            for n in range(40)
        ]
        await asyncio.gather(*flushes)
        by_user = await clients[0].query(**ALL, group_by=["user_id"])
        assert [(r.user_id, r.turns) for r in by_user] == [("u0", 120)] + [
            (f"u{k}", 40) for k in range(1, 5)
        ]
        (total,) = await clients[1].query(**ALL)
        assert (total.turns, total.input_tokens) == (280, 2800)
    finally:
        for client in clients:
            await client.close()
