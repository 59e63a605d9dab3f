"""Session stores behind one protocol, and opening one from a URL."""

from __future__ import annotations

import importlib
from typing import cast

from agenthost.errors import ConfigError
from agenthost.stores.base import RunRecord, SessionRecord, SessionStore, Snapshot, WriteBatch
from agenthost.stores.memory import MemoryStore
from agenthost.stores.sqlite import SQLiteStore

_BACKENDS = {
    "postgresql": ("agenthost.stores.postgres", "PostgresStore"),
    "postgres": ("agenthost.stores.postgres", "PostgresStore"),
    "redis": ("agenthost.stores.redis", "RedisStore"),
    "rediss": ("agenthost.stores.redis", "RedisStore"),
}


def open_store(url: str) -> SessionStore:
    """``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
    ``postgresql://...``, ``redis://...``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"store URL {url!r} has no scheme; e.g. sqlite:///agenthost.db")
    if scheme == "memory":
        return MemoryStore(max_messages=None)
    if scheme == "sqlite":
        path, _, query = rest.removeprefix("/").partition("?")
        full = "durability=full" in query
        return SQLiteStore(path or "agenthost.db", durability="full" if full else "normal")
    backend = _BACKENDS.get(scheme)
    if backend is not None:  # imported lazily: asyncpg/redis load only when used
        module, name = backend
        return cast(SessionStore, getattr(importlib.import_module(module), name)(url))
    raise ConfigError(f"unknown store scheme {scheme!r}: use memory, sqlite, postgresql or redis")


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
