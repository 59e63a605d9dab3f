"""``agenthost migrate``: create or upgrade the store's schema.

PostgreSQL has versioned migrations (``schema_migrations`` records them); ``agenthost
serve`` also applies them at start unless the store URL says ``migrate=false``.
SQLite creates its schema when opened; Redis and memory need none.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

HELP = "Create or upgrade the store's schema (PostgreSQL migrations) and print the versions."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="store URL (default $AGENTHOST_STORE), e.g. postgresql://user@host:5432/agenthost",
    )
    parser.add_argument(
        "--status", action="store_true", help="only show the applied versions, apply nothing"
    )


async def _postgres(url: str, status_only: bool) -> int:
    from agenthost.errors import StoreUnavailable
    from agenthost.stores.postgres import MIGRATIONS, PostgresStore, redact

    store = PostgresStore(url, migrate=False, min_size=0, max_size=1)
    await store.open()
    try:
        if status_only:
            applied: list[int] = []
            try:
                current = await store.applied_migrations()
            except StoreUnavailable:  # no schema_migrations table yet
                current = []
        else:
            applied = await store.migrate()
            current = await store.applied_migrations()
            await _guardrail_tables(url)
    finally:
        await store.close()
    names = {m.version: m.name for m in MIGRATIONS}
    for version in applied:
        print(f"applied {version}: {names[version]}")
    pending = [m.version for m in MIGRATIONS if m.version not in current]
    where = redact(store.dsn) + (f" schema {store.schema}" if store.schema else "")
    if status_only:
        print(f"{where}: applied {current or 'none'}, pending {pending or 'none'}")
    else:
        latest = max(current) if current else 0
        print(f"{where}: schema at version {latest}" + ("" if applied else " (nothing to apply)"))
    return 0


async def _guardrail_tables(url: str) -> None:
    """The quota and usage tables (also created on first use, unless ``migrate=false``)."""
    from agenthost.quotas.postgres import PostgresQuotaBackend
    from agenthost.usage import PostgresUsageLedger

    for part in (PostgresQuotaBackend(url, migrate=True), PostgresUsageLedger(url, migrate=True)):
        await part.open()
        await part.close()
    print("quota and usage tables: current")


async def _sqlite(url: str) -> int:
    from agenthost.stores import open_store

    store = open_store(url)
    await store.open()
    await store.close()
    print(f"{url}: tables created where missing (SQLite has no versioned migrations)")
    return 0


def run(args: argparse.Namespace) -> int:
    from agenthost.errors import AgentHostError, ConfigError
    from agenthost.urls import parse_url

    url = args.store or os.environ.get("AGENTHOST_STORE") or "sqlite:///agenthost.db"
    try:
        scheme = parse_url(url).scheme
        if scheme == "postgresql":
            return asyncio.run(_postgres(url, args.status))
        if scheme == "sqlite":
            return asyncio.run(_sqlite(url))
        print(f"{scheme} stores have no schema: nothing to migrate")
        return 0
    except AgentHostError as exc:
        print(f"agenthost migrate: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
