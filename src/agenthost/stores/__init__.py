"""Session stores behind one protocol, and opening one from a URL."""

from __future__ import annotations

import importlib
from typing import cast

from agenthost.stores.base import RunRecord, SessionRecord, SessionStore, Snapshot, WriteBatch
from agenthost.stores.memory import MemoryStore
from agenthost.stores.sqlite import SQLiteStore
from agenthost.urls import parse_url

_BACKENDS = {
    "postgresql": ("agenthost.stores.postgres", "PostgresStore"),
    "redis": ("agenthost.stores.redis", "RedisStore"),
    "rediss": ("agenthost.stores.redis", "RedisStore"),
}


def open_store(url: str) -> SessionStore:
    """``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
    ``postgresql://...``, ``redis://...``; the options each takes are listed in
    :mod:`agenthost.urls` (an unknown or invalid one is a ``ConfigError``)."""
    parsed = parse_url(url)
    if parsed.scheme == "memory":
        return MemoryStore(max_messages=None)
    if parsed.scheme == "sqlite":
        full = parsed.options.get("durability") == "full"
        return SQLiteStore(parsed.path, durability="full" if full else "normal")
    module, name = _BACKENDS[parsed.scheme]  # imported lazily: asyncpg/redis load only when used
    return cast(SessionStore, getattr(importlib.import_module(module), name)(url))


__all__ = [
    "MemoryStore",
    "RunRecord",
    "SQLiteStore",
    "SessionRecord",
    "SessionStore",
    "Snapshot",
    "WriteBatch",
    "open_store",
]
