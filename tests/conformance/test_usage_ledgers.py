"""One suite for every usage ledger (memory, SQLite, PostgreSQL, Redis): increments add
up exactly from concurrent clients, a batch counts once, reads filter and group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agenthost.usage import (
    ERASED_USER,
    MemoryUsageLedger,
    SQLiteUsageLedger,
    UsageLedger,
    UsageRow,
)
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


def by_tenant_and_user(rows: list[UsageRow]) -> dict[tuple[str | None, str | None], int]:
    return {(r.tenant_id, r.user_id): r.input_tokens for r in rows}


async def test_erasing_a_user_folds_their_rows_into_the_tenants_erased_user(
    ledgers: Ledgers,
) -> None:
    writer, eraser = ledgers.make(), ledgers.make()  # two processes
    for client in (writer, eraser):
        await client.open()
    try:
        await writer.add(
            [
                row("2024-03-01", "acme", "alice"),
                row("2024-03-01", "acme", "alice", model="n", turns=2),
                row("2024-03-02", "acme", "alice", turns=3),
                row("2024-03-01", "acme", "bob"),
                row("2024-03-01", "acme", "alice-smith"),  # a prefix of no concern
                row("2024-03-01", "other", "alice", turns=4),  # another tenant's alice
                row("2024-03-01", "acme", ERASED_USER),  # erased before
            ],
            batch="before",
        )
        tenants = await eraser.query(**ALL, group_by=["tenant_id"])
        await eraser.erase_user(tenant_id="acme", user_id="alice")
        assert await eraser.query(**ALL, group_by=["tenant_id"]) == tenants  # exact totals
        assert by_tenant_and_user(await eraser.query(**ALL, group_by=["tenant_id", "user_id"])) == {
            ("acme", ERASED_USER): 10 + 60,
            ("acme", "alice-smith"): 10,
            ("acme", "bob"): 10,
            ("other", "alice"): 40,
        }
        erased = await eraser.query(**ALL, user_id=ERASED_USER, group_by=["day", "model"])
        assert [(r.day, r.model, r.turns) for r in erased] == [
            ("2024-03-01", "m", 2),
            ("2024-03-01", "n", 2),
            ("2024-03-02", "m", 3),
        ]
        assert await writer.query(**ALL, tenant_id="acme", user_id="alice") == []
        # what the other process counted for alice and flushes after the erasure: fenced
        await writer.add(
            [row("2024-03-02", "acme", "alice", turns=5), row("2024-03-02", "acme", "bob")],
            batch="after",
        )
        assert by_tenant_and_user(
            await writer.query(**ALL, tenant_id="acme", group_by=["tenant_id", "user_id"])
        ) == {("acme", ERASED_USER): 120, ("acme", "alice-smith"): 10, ("acme", "bob"): 20}
        await eraser.erase_user(tenant_id="acme", user_id=ERASED_USER)  # changes nothing
        (total,) = await eraser.query(**ALL)
        assert (total.turns, total.input_tokens) == (19, 190)
    finally:
        for client in (writer, eraser):
            await client.close()


async def test_an_erasure_racing_flushes_leaves_no_trace_of_the_user(ledgers: Ledgers) -> None:
    clients = [ledgers.make(), ledgers.make(), ledgers.make()]
    for client in clients:
        await client.open()
    try:

        async def flush(n: int) -> None:
            rows = [row("2024-07-01", "t", "gone", turns=1), row("2024-07-01", "t", "kept")]
            await clients[n % 2].add(rows, batch=f"race-{n}")

        async def erase() -> None:  # started after half of the flushes
            await clients[2].erase_user(tenant_id="t", user_id="gone")

        await asyncio.gather(
            *(flush(n) for n in range(20)), erase(), *(flush(n) for n in range(20, 40))
        )
        by_user = await clients[0].query(**ALL, group_by=["user_id"])
        assert [(r.user_id, r.turns) for r in by_user] == [(ERASED_USER, 40), ("kept", 40)]
    finally:
        for client in clients:
            await client.close()
