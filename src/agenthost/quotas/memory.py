"""Quota counters in this process: for one process serving alone (and for tests).

Each scope holds its members with their expiry times; an admission runs without
an ``await`` between its checks and its counting, so it is atomic in the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from agenthost.quotas.base import Check, Refusal
from agenthost.quotas.limits import Limits, Overrides, TenantLimits

TURN_RETRY = 1.0
"""Retry-After for a refused concurrent turn: running turns end at unknown times."""


class MemoryQuotaBackend:
    shared = False

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._sets: dict[tuple[str, str], dict[str, float]] = {}  # (kind, scope) -> member: expiry
        self._tokens: dict[str, tuple[int, float]] = {}  # scope of the day -> (used, expiry)
        self._tenants: dict[str, TenantLimits] = {}
        self._users: dict[tuple[str, str], Limits] = {}
        self._version = 0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _live(self, check: Check, now: float) -> dict[str, float]:
        members = self._sets.setdefault((check.kind, check.scope), {})
        expired = [m for m, until in members.items() if until <= now]
        for member in expired:
            del members[member]
        return members

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        now = self.clock()
        for index, check in enumerate(checks):
            if check.kind == "tokens":
                used, until = self._tokens.get(check.scope, (0, 0.0))
                if until > now and used >= check.limit:
                    return Refusal(index, check.seconds)
                continue
            members = self._live(check, now)
            if check.member in members or len(members) < check.limit:
                continue
            if check.kind == "turns":
                return Refusal(index, TURN_RETRY)
            return Refusal(index, min(members.values()) - now)
        for check in checks:
            if check.kind != "tokens":
                self._sets[(check.kind, check.scope)][check.member] = now + check.seconds
        self._drop_empty()
        return None

    def _drop_empty(self) -> None:
        if len(self._sets) > 10_000:
            now = self.clock()
            for name in [n for n, m in self._sets.items() if all(t <= now for t in m.values())]:
                del self._sets[name]

    async def release(self, checks: Sequence[Check]) -> None:
        for check in checks:
            members = self._sets.get((check.kind, check.scope))
            if members is not None:
                members.pop(check.member, None)

    async def renew(self, checks: Sequence[Check]) -> None:
        now = self.clock()
        for check in checks:
            members = self._sets.get((check.kind, check.scope))
            if members is not None and check.member in members:
                members[check.member] = now + check.seconds

    async def add_tokens(self, checks: Sequence[Check], tokens: int) -> None:
        now = self.clock()
        for check in checks:
            used, until = self._tokens.get(check.scope, (0, 0.0))
            if until <= now:
                used = 0
            self._tokens[check.scope] = (used + tokens, now + check.seconds)

    async def overrides(self) -> Overrides:
        return Overrides(dict(self._tenants), dict(self._users))

    async def overrides_version(self) -> str:
        return str(self._version)

    async def set_tenant(self, tenant_id: str, limits: TenantLimits | None) -> None:
        if limits is None:
            self._tenants.pop(tenant_id, None)
        else:
            self._tenants[tenant_id] = limits
        self._version += 1

    async def set_user(self, tenant_id: str, user_id: str, limits: Limits | None) -> None:
        if limits is None:
            self._users.pop((tenant_id, user_id), None)
        else:
            self._users[(tenant_id, user_id)] = limits
        self._version += 1
