"""Usage metering: turns, errors and tokens per tenant, user, agent, model and UTC day.

:class:`UsageMeter` counts on the turn's path (in memory) and adds the counts to
a ledger in the background; :func:`open_ledger` picks the ledger for a store URL:

===========================  ==========================================================
store                        ledger
===========================  ==========================================================
``sqlite:///path.db``        :class:`SQLiteUsageLedger`: table ``usage_daily`` in the file
``postgresql://...``         :class:`PostgresUsageLedger`: table ``usage_daily``
``redis://...``              :class:`RedisUsageLedger`: a hash per tenant and day
``memory://``                :class:`MemoryUsageLedger`: in this process
===========================  ==========================================================

Erasing a user (:func:`erase_user_usage`) keeps the tenant's totals and drops the
user's identity: their rows are added to those of the user id ``(erased)`` of the
tenant (:data:`ERASED_USER`), and what is still added for them in the next
:data:`ERASURE_FENCE` seconds too.
"""

from __future__ import annotations

from agenthost.usage.memory import MemoryUsageLedger
from agenthost.usage.meter import UsageMeter
from agenthost.usage.rows import (
    COUNTERS,
    DIMENSIONS,
    ERASED_USER,
    ERASURE_FENCE,
    Dimension,
    UsageLedger,
    UsageRow,
    check_group_by,
    utc_day,
)
from agenthost.usage.sql import PostgresUsageLedger, SQLiteUsageLedger


def open_ledger(store_url: str) -> UsageLedger:
    """The ledger that keeps usage beside the sessions of ``store_url``."""
    scheme, _, rest = store_url.partition("://")
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return PostgresUsageLedger(store_url)
    if scheme in ("redis", "rediss"):
        from agenthost.usage.redis import RedisUsageLedger

        return RedisUsageLedger(store_url)
    if scheme == "sqlite":
        path = rest.removeprefix("/").partition("?")[0] or "agenthost.db"
        if path != ":memory:":
            return SQLiteUsageLedger(path)
    return MemoryUsageLedger()


async def erase_user_usage(meter: UsageMeter | None, *, tenant_id: str, user_id: str) -> None:
    """Remove a user from the usage ledger (see :meth:`UsageLedger.erase_user`)."""
    if meter is not None:
        await meter.ledger.erase_user(tenant_id=tenant_id, user_id=user_id)


__all__ = [
    "COUNTERS",
    "DIMENSIONS",
    "ERASED_USER",
    "ERASURE_FENCE",
    "Dimension",
    "MemoryUsageLedger",
    "PostgresUsageLedger",
    "SQLiteUsageLedger",
    "UsageLedger",
    "UsageMeter",
    "UsageRow",
    "check_group_by",
    "erase_user_usage",
    "open_ledger",
    "utc_day",
]
