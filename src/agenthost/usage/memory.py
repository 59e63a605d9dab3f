"""Usage kept in this process (a Host on a memory store, and tests)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from agenthost.usage.rows import Dimension, Key, UsageRow, group


class MemoryUsageLedger:
    shared = False

    def __init__(self) -> None:
        self._totals: dict[Key, UsageRow] = {}
        self._batches: set[str] = set()
        self._order: deque[str] = deque()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        if batch in self._batches:
            return
        self._batches.add(batch)
        self._order.append(batch)
        if len(self._order) > 10_000:  # only recent batches are ever retried
            self._batches.discard(self._order.popleft())
        for row in rows:
            key = (
                row.day or "",
                row.tenant_id or "",
                row.user_id or "",
                row.agent or "",
                row.model or "",
            )
            total = self._totals.get(key)
            if total is None:
                total = self._totals[key] = UsageRow(*key)
            total.add(row)

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        rows = [
            row
            for (day, tenant, user, _, _), row in self._totals.items()
            if since <= day <= until
            and (tenant_id is None or tenant == tenant_id)
            and (user_id is None or user == user_id)
        ]
        return group(rows, group_by)
