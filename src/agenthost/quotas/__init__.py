"""Quotas: per-tenant and per-user limits, counted across processes.

==================================  ============================================
deployment                          where counters live
==================================  ============================================
``--coordination redis://``         :class:`RedisQuotaBackend` (Lua scripts)
Redis store                         :class:`RedisQuotaBackend` on the store's server
PostgreSQL store (no Redis)         :class:`PostgresQuotaBackend` (one function call)
one process (SQLite, memory)        :class:`MemoryQuotaBackend` (in this process)
==================================  ============================================

See :mod:`agenthost.quotas.core` for what is counted and when, and
:mod:`agenthost.quotas.limits` for how defaults and overrides combine.
"""

from __future__ import annotations

from agenthost.errors import ConfigError
from agenthost.quotas.base import Check, QuotaBackend, Refusal
from agenthost.quotas.core import Admission, Quotas, admitted, settled
from agenthost.quotas.limits import (
    LIMIT_NAMES,
    Effective,
    Limits,
    Overrides,
    QuotaPolicy,
    TenantLimits,
)
from agenthost.quotas.memory import MemoryQuotaBackend

_POSTGRES = ("postgresql", "postgres")
_REDIS = ("redis", "rediss")


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def choose_backend(
    store_url: str, coordination_url: str | None = None, workers: int = 1
) -> QuotaBackend:
    """The backend for a deployment (see the table above)."""
    if coordination_url and _scheme(coordination_url) in _REDIS:
        from agenthost.quotas.redis import RedisQuotaBackend

        return RedisQuotaBackend(coordination_url)
    scheme = _scheme(store_url)
    if scheme in _REDIS:
        from agenthost.quotas.redis import RedisQuotaBackend

        return RedisQuotaBackend(store_url)
    if scheme in _POSTGRES:
        from agenthost.quotas.postgres import PostgresQuotaBackend

        return PostgresQuotaBackend(store_url)
    if coordination_url and _scheme(coordination_url) in _POSTGRES:
        from agenthost.quotas.postgres import PostgresQuotaBackend

        return PostgresQuotaBackend(coordination_url)
    if workers > 1:
        raise ConfigError(
            f"quotas with --workers {workers} on a {scheme}:// store would be counted in each "
            "worker apart: give --coordination redis://... (or use a postgresql:// store)"
        )
    return MemoryQuotaBackend()


__all__ = [
    "LIMIT_NAMES",
    "Admission",
    "Check",
    "Effective",
    "Limits",
    "MemoryQuotaBackend",
    "Overrides",
    "QuotaBackend",
    "QuotaPolicy",
    "Quotas",
    "Refusal",
    "TenantLimits",
    "admitted",
    "choose_backend",
    "settled",
]
