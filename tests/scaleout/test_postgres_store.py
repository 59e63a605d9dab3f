"""PostgresStore beyond the conformance suite: migrations, failures, recovery."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from agenthost.cli import main
from agenthost.errors import InvalidInput, StoreUnavailable
from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores import WriteBatch, open_store
from agenthost.stores.postgres import MIGRATIONS, PostgresStore, parse_url
from support.services import postgres_url, unique

KEY = SessionKey("t", "u", "s")
LATEST = MIGRATIONS[-1].version


async def test_open_applies_every_migration_once(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        assert await store.applied_migrations() == [m.version for m in MIGRATIONS]
        assert await store.migrate() == []  # nothing left
    finally:
        await store.close()
    again = PostgresStore(pg_url)
    await again.open()
    await again.close()


async def test_processes_starting_together_migrate_without_racing(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, migrate=False, max_size=1) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        applied = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(v for versions in applied for v in versions) == [
            m.version for m in MIGRATIONS
        ]
        assert await stores[0].applied_migrations() == [m.version for m in MIGRATIONS]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_migrate_false_leaves_the_schema_alone(pg_url: str) -> None:
    store = open_store(pg_url + "&migrate=false")
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        with pytest.raises(StoreUnavailable, match=r"schema_migrations|does not exist"):
            await store.applied_migrations()
    finally:
        await store.close()


def test_migrate_command_prints_versions(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--store", pg_url, "--status"]) == 0
    assert f"pending {[m.version for m in MIGRATIONS]}" in capsys.readouterr().out
    assert main(["migrate", "--store", pg_url]) == 0
    out = capsys.readouterr().out
    for migration in MIGRATIONS:
        assert f"applied {migration.version}: {migration.name}" in out
    assert f"schema at version {LATEST}" in out
    assert main(["migrate", "--store", pg_url]) == 0
    assert "nothing to apply" in capsys.readouterr().out


def test_url_options_are_ours_and_the_rest_goes_to_asyncpg() -> None:
    dsn, options = parse_url(
        "postgres://u:secret@h:5/db?schema=s1&sslmode=disable&max_size=3&lock_ttl=2"
    )
    assert dsn == "postgresql://u:secret@h:5/db?sslmode=disable"
    assert options == {"schema": "s1", "max_size": "3", "lock_ttl": "2"}
    store = PostgresStore("postgresql://u:secret@h/db?schema=s1&max_size=3")
    assert (store.schema, store.max_size) == ("s1", 3)
    assert "secret" not in repr(store)


async def test_an_unreachable_server_is_store_unavailable() -> None:
    store = PostgresStore("postgresql://postgres:pw@127.0.0.1:1/test", connect_timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL") as info:
        await store.open()
    assert "pw" not in info.value.message
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.ping()


async def test_killed_connections_are_replaced_transparently(pg_url: str) -> None:
    """Connections terminated by the server (as in a restart) are reconnected and retried."""
    name = unique("victim")
    store = PostgresStore(f"{pg_url}&application_name={name}", min_size=2, max_size=2)
    await store.open()
    try:
        await store.write(WriteBatch(KEY, 1.0, 0, [Message("user", "hi", seq=1)]))
        admin = await asyncpg.connect(postgres_url())
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            )
        finally:
            await admin.close()
        assert killed >= 1
        # every pooled connection may be dead now: reads and writes still succeed
        for seq in range(2, 6):
            await store.write(WriteBatch(KEY, 1.0, seq - 1, [Message("user", "x", seq=seq)]))
        assert await store.last_seq(KEY) == 5
        await store.ping()
    finally:
        await store.close()


async def test_nul_in_json_state_is_invalid_input_not_an_outage(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        with pytest.raises(InvalidInput):
            await store.write(WriteBatch(KEY, 1.0, 0, (), state={"bad": "a\x00b"}))
        await store.write(WriteBatch(KEY, 1.0, 0, [Message("user", "nul \x00 in text", seq=1)]))
        assert (await store.messages(KEY))[0].content == "nul \x00 in text"
    finally:
        await store.close()
