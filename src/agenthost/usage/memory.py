"""Usage kept in this process (a Host on a memory store, and tests)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from agenthost.usage.rows import ERASED_USER, ERASURE_FENCE, Dimension, Key, UsageRow, group


class MemoryUsageLedger:
    shared = False

    def __init__(self) -> None:
        self._totals: dict[Key, UsageRow] = {}
        self._batches: set[str] = set()
        self._order: deque[str] = deque()
        self._fences: dict[tuple[str, str], float] = {}  # (tenant, user) -> until (monotonic)

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
        now = time.monotonic()
        for row in rows:
            tenant, user = row.tenant_id or "", row.user_id or ""
            if self._fences.get((tenant, user), 0.0) > now:
                user = ERASED_USER
            self._add((row.day or "", tenant, user, row.agent or "", row.model or ""), row)

    def _add(self, key: Key, row: UsageRow) -> None:
        total = self._totals.get(key)
        if total is None:
            total = self._totals[key] = UsageRow(*key)
        total.add(row)

    async def erase_user(self, *, tenant_id: str, user_id: str) -> None:
        if user_id == ERASED_USER:
            return
        now = time.monotonic()
        self._fences = {k: until for k, until in self._fences.items() if until > now}
        self._fences[(tenant_id, user_id)] = now + ERASURE_FENCE
        for key in [k for k in self._totals if k[1] == tenant_id and k[2] == user_id]:
            day, tenant, _, agent, model = key
            self._add((day, tenant, ERASED_USER, agent, model), self._totals.pop(key))

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
