"""Admission: :class:`Quotas` decides whether a turn may start, and counts it.

One admission is one call to the backend, whatever the number of limits
involved (the user's and the tenant's, up to four each): the backend checks
every one and, only if all pass, counts the request in all of them, atomically
(one Lua script in Redis; one multi-row upsert in PostgreSQL; one critical
section in memory). When no limit applies to the caller, :meth:`Quotas.admit`
returns ``None`` without any I/O: a deployment with no limits configured pays
nothing on its hot path.

What is counted, per scope (a user, or a tenant as a whole):

- a *rate* entry per admitted turn, for 60 seconds (a sliding window);
- a *turn* lease while the turn runs, renewed in the background every third of
  ``lease_seconds`` and released when it ends (a crashed process's leases
  expire after ``lease_seconds``);
- the *session* as live, until it has been idle for ``session_ttl``;
- the turn's tokens, added to the UTC day's total when it ends. A turn is
  admitted while the day's total is under the budget, so the last turns of a day
  can overshoot it by their own size: tokens are only known once spent.

Overrides an admin sets are stored in the backend and read by every process
every ``refresh_seconds`` (and at once by the process that set them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal

from agenthost.errors import (
    AgentHostError,
    QuotaExceeded,
    RateLimited,
    TokenBudgetExhausted,
    TooManyConcurrentTurns,
    TooManyLiveSessions,
)
from agenthost.events import Done, ErrorEvent, Event
from agenthost.keys import SessionKey
from agenthost.models.base import estimate_tokens
from agenthost.quotas.base import SEP, Check, Kind, QuotaBackend
from agenthost.quotas.limits import Effective, Limits, Overrides, QuotaPolicy, TenantLimits
from agenthost.quotas.memory import MemoryQuotaBackend

if TYPE_CHECKING:
    from agenthost.turn import Turn

log = logging.getLogger("agenthost.quotas")

RATE_WINDOW = 60.0
DEFAULT_LEASE = 60.0
DEFAULT_REFRESH = 5.0
DEFAULT_SESSION_TTL = 3600.0
DAY = 86_400
SWEEP_EVERY = 300.0


_ERRORS: dict[Kind, type[QuotaExceeded]] = {
    "rate": RateLimited,
    "turns": TooManyConcurrentTurns,
    "sessions": TooManyLiveSessions,
    "tokens": TokenBudgetExhausted,
}

_WHAT: dict[Kind, str] = {
    "rate": "requests per minute",
    "turns": "concurrent turns",
    "sessions": "live sessions",
    "tokens": "tokens per day",
}


def refusal_error(check: Check, retry_after: float | None) -> QuotaExceeded:
    whose = "this user's" if check.level == "user" else "this tenant's"
    message = f"{whose} limit of {check.limit} {_WHAT[check.kind]} is reached"
    if retry_after is not None:
        message += f"; retry after {max(1, round(retry_after))}s"
    return _ERRORS[check.kind](
        message, retry_after=retry_after, scope=check.level, limit=check.limit
    )


def scope_of(level: str, key: SessionKey) -> str:
    if level == "user":
        return f"u{SEP}{key.tenant_id}{SEP}{key.user_id}"
    return f"t{SEP}{key.tenant_id}"


def seconds_to_midnight(now: float) -> float:
    return DAY - (now % DAY)


def day_of(now: float) -> int:
    """Days since the epoch, UTC."""
    return int(now // DAY)


class Admission:
    """An admitted turn: its leases to release and the token counters to charge.

    The Host tells it which turn it admitted (:meth:`follow`) and calls
    :meth:`finish` when the turn ends (at its last event, or when it is abandoned).
    """

    __slots__ = ("checks", "done", "quotas", "seen", "turn")

    def __init__(self, quotas: Quotas, checks: list[Check]) -> None:
        self.quotas = quotas
        self.checks = checks
        self.done = False
        self.turn: Turn | None = None
        self.seen = 0

    def follow(self, turn: Turn) -> None:
        self.turn = turn
        self.seen = turn.usage.total_tokens  # a resumed run carries what it spent before

    def spent(self) -> int:
        """Tokens the turn used: the provider's count, else an estimate from its messages."""
        turn = self.turn
        if turn is None:
            return 0
        used = turn.usage.total_tokens - self.seen
        if used > 0 or not turn.usage.requests:
            return max(0, used)
        run_id = turn.run.run_id
        return sum(estimate_tokens(m.content) for m in turn.live.window if m.run_id == run_id)

    async def finish(self) -> None:
        """Release the turn's leases and charge what it spent to the day's budgets.

        Idempotent; a backend failure here is logged, never raised (the turn's own
        outcome stands; a lease left behind expires).
        """
        if self.done:
            return
        self.done = True
        await self.quotas.settle(self, self.spent())


class Admitted:
    """``async with`` an admission around ``inner`` (the session lock): the admission is
    taken (or given) on entry, before ``inner`` is entered, and finished on exit."""

    __slots__ = ("given", "inner", "key", "quotas", "session", "ticket")

    def __init__(
        self,
        quotas: Quotas | None,
        key: SessionKey,
        given: Admission | None,
        inner: AbstractAsyncContextManager[None] | None,
        session: bool,
    ) -> None:
        self.quotas = quotas
        self.key = key
        self.given = given
        self.inner = inner
        self.session = session
        self.ticket: Admission | None = None

    async def __aenter__(self) -> Admission | None:
        ticket = self.given
        if ticket is None and self.quotas is not None:
            ticket = await self.quotas.admit(self.key, session=self.session)
        self.ticket = ticket
        if self.inner is not None:
            try:
                await self.inner.__aenter__()
            except BaseException:
                if ticket is not None:
                    await ticket.finish()
                raise
        return ticket

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            if self.inner is not None:
                return await self.inner.__aexit__(*exc)
            return None
        finally:
            if self.ticket is not None:
                await self.ticket.finish()


class _NoAdmission:
    """What a Host with no limits enters instead of :class:`Admitted`: nothing at all."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


NO_ADMISSION = _NoAdmission()


def settled(
    ticket: Admission | None, turn: Turn, events: AsyncGenerator[Event, None]
) -> AsyncGenerator[Event, None]:
    """``turn``'s events, with ``ticket`` finished at the turn's last event, before the
    caller sees it (a client that starts its next turn at once finds the lease free)."""
    if ticket is None:
        return events
    ticket.follow(turn)
    return _settling(ticket, events)


async def _settling(
    ticket: Admission, events: AsyncGenerator[Event, None]
) -> AsyncGenerator[Event, None]:
    try:
        async for event in events:
            if type(event) is Done or type(event) is ErrorEvent:
                await ticket.finish()
            yield event
    finally:
        await events.aclose()


def admitted(
    quotas: Quotas | None,
    key: SessionKey,
    given: Admission | None,
    inner: AbstractAsyncContextManager[None] | None = None,
    *,
    session: bool = True,
) -> AbstractAsyncContextManager[Admission | None]:
    """What a Host enters around a turn: the admission (``as ticket``), with ``inner``
    (the session lock, which enters as ``None``) inside it. With no limit in force this is
    ``inner`` itself: the turn's path has no step more than without quotas."""
    if given is None and (quotas is None or not quotas.policy.may_limit):
        return NO_ADMISSION if inner is None else inner
    return Admitted(quotas, key, given, inner, session)


class Quotas:
    """Limits of tenants and users, counted in a backend shared by every process.

    ``Quotas(user=Limits(requests_per_minute=60))`` limits every user; ``tenant=``
    every tenant as a whole; ``overrides`` (or a whole ``policy``) sets some apart.
    The backend defaults to this process's memory (one process only).
    ``fail_open``: when the backend cannot be reached, admit (and log) instead of
    refusing with ``StoreUnavailable``.
    """

    def __init__(
        self,
        policy: QuotaPolicy | None = None,
        *,
        user: Limits | None = None,
        tenant: Limits | None = None,
        overrides: Overrides | None = None,
        backend: QuotaBackend | None = None,
        lease_seconds: float = DEFAULT_LEASE,
        refresh_seconds: float | None = DEFAULT_REFRESH,
        session_ttl: float | None = DEFAULT_SESSION_TTL,
        fail_open: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if backend is None:
            backend = MemoryQuotaBackend(clock=clock)
        if policy is None:
            policy = QuotaPolicy(user=user, tenant=tenant, overrides=overrides)
        elif user is not None or tenant is not None or overrides is not None:
            raise ValueError("give either a policy or user/tenant/overrides limits, not both")
        self.policy = policy
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.refresh_seconds = refresh_seconds
        self.session_ttl = session_ttl or DEFAULT_SESSION_TTL
        self.fail_open = fail_open
        self.clock = clock
        self.refused = 0
        self.listeners: list[Callable[[QuotaExceeded], None]] = []  # refusals (metrics)
        self._configured = self.policy.overrides
        self._version: str | None = None
        self._held: dict[int, list[Check]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = False

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        await self.backend.open()
        with contextlib.suppress(AgentHostError):  # not reachable yet: the refresher retries
            await self.refresh()
        if self.backend.shared and self.refresh_seconds:
            self._tasks.append(asyncio.create_task(self._refresh_forever(), name="quota-refresh"))
        self._tasks.append(asyncio.create_task(self._renew_forever(), name="quota-leases"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        held = [c for checks in self._held.values() for c in checks]
        self._held.clear()
        if held:
            with contextlib.suppress(AgentHostError):
                await self.backend.release(held)
        if self._opened:
            await self.backend.close()
            self._opened = False

    # -- admission -------------------------------------------------------------------

    def limits_for(self, tenant_id: str, user_id: str) -> Effective:
        return self.policy.limits_for(tenant_id, user_id)

    async def admit(self, key: SessionKey, *, session: bool = True) -> Admission | None:
        """Count a turn of ``key`` against every limit that applies, or raise the
        :class:`~agenthost.errors.QuotaExceeded` of the first one reached.

        ``None`` (and no I/O) when no limit applies. ``session=False`` for a turn that
        keeps no session (it does not count as a live session).
        """
        policy = self.policy
        if not policy.may_limit:
            return None
        effective = policy.limits_for(key.tenant_id, key.user_id)
        if not effective.active:
            return None
        checks = self._checks(key, effective, session)
        if not checks:
            return None
        try:
            refusal = await self.backend.admit(checks)
        except AgentHostError as exc:
            if not self.fail_open:
                raise
            log.warning("quota backend unavailable, admitting (fail_open): %s", exc)
            return None
        if refusal is not None:
            self.refused += 1
            error = refusal_error(checks[refusal.index], refusal.retry_after)
            for listener in self.listeners:
                listener(error)
            raise error
        admission = Admission(self, [c for c in checks if c.kind in ("turns", "tokens")])
        leases = [c for c in checks if c.kind == "turns"]
        if leases:
            self._held[id(admission)] = leases
        return admission

    def _checks(self, key: SessionKey, effective: Effective, session: bool) -> list[Check]:
        token = os.urandom(8).hex()
        checks: list[Check] = []
        now = self.clock()
        for level, limits in (("user", effective.user), ("tenant", effective.tenant)):
            scope = scope_of(level, key)
            lvl: Literal["user", "tenant"] = "user" if level == "user" else "tenant"
            if limits.requests_per_minute:
                checks.append(
                    Check("rate", scope, limits.requests_per_minute, token, RATE_WINDOW, lvl)
                )
            if limits.concurrent_turns:
                checks.append(
                    Check("turns", scope, limits.concurrent_turns, token, self.lease_seconds, lvl)
                )
            if limits.live_sessions and session:
                member = (
                    key.session_id if level == "user" else f"{key.user_id}{SEP}{key.session_id}"
                )
                checks.append(
                    Check("sessions", scope, limits.live_sessions, member, self.session_ttl, lvl)
                )
            if limits.tokens_per_day:
                day = f"{scope}{SEP}{day_of(now)}"
                checks.append(
                    Check("tokens", day, limits.tokens_per_day, "", seconds_to_midnight(now), lvl)
                )
        return checks

    async def settle(self, admission: Admission, tokens: int) -> None:
        leases = self._held.pop(id(admission), None)
        counters = [c for c in admission.checks if c.kind == "tokens"]
        try:
            if leases:
                await self.backend.release(leases)
            if counters and tokens > 0:
                await self.backend.add_tokens(counters, tokens)
        except AgentHostError as exc:
            log.warning("could not settle a turn's quotas: %s", exc)

    # -- overrides -------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Re-read the backend's overrides if they changed; True if they did."""
        version = await self.backend.overrides_version()
        if version == self._version:
            return False
        stored = await self.backend.overrides()
        self._version = version
        self.policy.replace_overrides(self._configured.merged(stored))
        return True

    async def stored_overrides(self) -> Overrides:
        """The overrides an admin set (read from the backend now)."""
        return await self.backend.overrides()

    async def set_tenant(self, tenant_id: str, limits: TenantLimits | None) -> None:
        """Set (or with ``None`` remove) a tenant's override, for every process."""
        await self.backend.set_tenant(tenant_id, None if limits is None or limits.empty else limits)
        self._version = None
        await self.refresh()

    async def set_user(self, tenant_id: str, user_id: str, limits: Limits | None) -> None:
        """Set (or with ``None`` remove) a user's override, for every process."""
        await self.backend.set_user(
            tenant_id, user_id, None if limits is None or limits.empty else limits
        )
        self._version = None
        await self.refresh()

    # -- background ------------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        """Re-read overrides every ``refresh_seconds``; sweep empty counters now and then."""
        assert self.refresh_seconds
        sweep = getattr(self.backend, "sweep", None)
        next_sweep = self.clock() + SWEEP_EVERY
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
                if sweep is not None and self.clock() >= next_sweep:
                    next_sweep = self.clock() + SWEEP_EVERY
                    await sweep()
            except AgentHostError as exc:
                log.warning("could not refresh quota overrides: %s", exc)

    async def _renew_forever(self) -> None:
        """Renew every lease this process holds, in one call, every third of the lease."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = [c for checks in self._held.values() for c in checks]
            if not held:
                continue
            try:
                await self.backend.renew(held)
            except AgentHostError as exc:
                log.warning("could not renew turn leases: %s", exc)
