"""Cross-process per-session ordering: which coordinator a deployment needs.

===========================  ==========================================================
deployment                   coordinator
===========================  ==========================================================
``--coordination redis://``  :class:`RedisCoordinator` (token lock, renewed, expires)
PostgreSQL store             :class:`PostgresCoordinator` (lease rows, renewed, expire)
Redis store                  :class:`RedisCoordinator` on the store's server
SQLite, ``--workers`` > 1    :class:`FileLockCoordinator` (``fcntl`` locks next to the db)
anything else                none: the Host's in-process locks are enough
===========================  ==========================================================

PostgreSQL and Redis stores always get a coordinator, even with one worker:
other processes, on this machine or another, may serve the same store.
Each coordinator module imports its driver only when chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agenthost.errors import ConfigError
from agenthost.locks import Coordinator
from agenthost.urls import SCHEMES, parse_url

if TYPE_CHECKING:
    from agenthost.coordination.files import FileLockCoordinator
    from agenthost.coordination.postgres import PostgresCoordinator
    from agenthost.coordination.redis import RedisCoordinator


def sqlite_lock_path(store_url: str) -> str | None:
    """The lock file beside a ``sqlite:///`` database (None for an in-memory database)."""
    path = parse_url(store_url).path
    return None if path == ":memory:" else f"{path}.locks"


def build_coordinator(
    store_url: str, coordination_url: str | None = None, workers: int = 1
) -> Coordinator | None:
    """Pick the coordinator for a store URL, an optional coordination URL and a worker count.

    Both URLs go through :func:`agenthost.urls.parse_url`, so a bad option is an error here.
    """
    store = parse_url(store_url)
    if coordination_url:
        scheme = coordination_url.partition("://")[0]
        if SCHEMES.get(scheme.lower()) not in ("redis", "rediss", "postgresql"):
            raise ConfigError(
                f"coordination URL scheme {scheme!r} is not supported: "
                "use redis:// or postgresql://"
            )
        if parse_url(coordination_url, what="coordination URL").scheme == "postgresql":
            from agenthost.coordination.postgres import PostgresCoordinator

            return PostgresCoordinator(coordination_url)
        from agenthost.coordination.redis import RedisCoordinator

        return RedisCoordinator(coordination_url)
    if store.scheme == "postgresql":
        from agenthost.coordination.postgres import PostgresCoordinator

        return PostgresCoordinator(store_url)
    if store.scheme in ("redis", "rediss"):
        from agenthost.coordination.redis import RedisCoordinator

        return RedisCoordinator(store_url)
    if store.scheme == "sqlite" and workers > 1:
        path = sqlite_lock_path(store_url)
        if path is not None:
            from agenthost.coordination.files import FileLockCoordinator

            return FileLockCoordinator(path)
    return None


def __getattr__(name: str) -> object:  # the classes, imported on first use
    modules = {
        "FileLockCoordinator": "files",
        "PostgresCoordinator": "postgres",
        "RedisCoordinator": "redis",
    }
    if name in modules:
        import importlib

        return getattr(importlib.import_module(f"agenthost.coordination.{modules[name]}"), name)
    raise AttributeError(name)


__all__ = [
    "FileLockCoordinator",
    "PostgresCoordinator",
    "RedisCoordinator",
    "build_coordinator",
    "sqlite_lock_path",
]
