"""What every cross-process coordinator shares: waiting for a lock, and keeping a lease.

A lease coordinator (Redis, PostgreSQL) takes a per-session lock that carries a
random token and an expiry, renews it from a background task while the turn
runs, and releases it only if the token is still its own. A holder that dies
stops renewing, so its session is blocked for at most ``ttl`` seconds.

Waiting (policy ``queue``) polls with a jittered, capped exponential backoff: a
waiter never blocks the event loop, and one that has waited ``wait_timeout``
seconds gives up with :class:`~agenthost.errors.SessionBusy`. Within a process
the Host's own per-key lock already queues turns in arrival order, so at most
one task per process polls for a given session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from agenthost.errors import AgentHostError, ConfigError, SessionBusy
from agenthost.keys import SessionKey

if TYPE_CHECKING:
    from agenthost.locks import LeaseFolding
    from agenthost.stores.base import SessionStore

log = logging.getLogger("agenthost.coordination")

DEFAULT_TTL = 15.0
DEFAULT_WAIT_TIMEOUT = 120.0
POLL_FIRST = 0.005
POLL_CAP = 0.1


def option_seconds(options: dict[str, str], name: str, default: float) -> float:
    raw = options.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


async def wait_for_turn(
    key: SessionKey,
    attempt: Callable[[], Awaitable[bool]],
    *,
    wait: bool,
    wait_timeout: float,
    where: str,
) -> None:
    """Call ``attempt()`` until it returns True; ``SessionBusy`` at once or after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_timeout
    delay = POLL_FIRST
    while not await attempt():
        if not wait:
            raise SessionBusy(f"session {key.session_id!r} is busy with a turn in {where}")
        if loop.time() >= deadline:
            raise SessionBusy(
                f"session {key.session_id!r} was still busy in {where} after waiting "
                f"{wait_timeout:g}s; try again later"
            )
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, POLL_CAP)


class LeaseCoordinator:
    """A coordinator whose locks are leases: subclasses say how to take, renew, release one."""

    shared = True
    where = "another process"

    def __init__(self, *, ttl: float = DEFAULT_TTL, wait_timeout: float = DEFAULT_WAIT_TIMEOUT):
        if ttl <= 0 or wait_timeout <= 0:
            raise ConfigError("lock ttl and wait timeout must be positive")
        self.ttl = ttl
        self.wait_timeout = wait_timeout
        self.renewals = 0
        self.lost = 0  # leases found taken over at renewal (a stalled holder)
        self._releases: set[asyncio.Task[None]] = set()

    async def try_acquire(self, key: SessionKey, token: str) -> bool:
        raise NotImplementedError

    async def renew(self, key: SessionKey, token: str) -> bool:
        """Extend the lease; False if it is no longer ours."""
        raise NotImplementedError

    async def release(self, key: SessionKey, token: str) -> None:
        raise NotImplementedError

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` if locks cannot be taken now (for readiness checks)."""
        raise NotImplementedError

    def fold(self, store: SessionStore) -> LeaseFolding | None:
        """Leases are taken by themselves unless a subclass can fold them into ``store``."""
        return None

    async def close(self) -> None:
        """Subclasses close their connections after this."""
        for task in self._releases:
            task.cancel()
        await asyncio.gather(*self._releases, return_exceptions=True)

    @asynccontextmanager
    async def hold(self, key: SessionKey, *, wait: bool) -> AsyncIterator[None]:
        token = secrets.token_hex(16)
        await wait_for_turn(
            key,
            lambda: self.try_acquire(key, token),
            wait=wait,
            wait_timeout=self.wait_timeout,
            where=self.where,
        )
        keeper = asyncio.create_task(self._keep(key, token), name=f"agenthost-lease {key}")
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self.let_go(key, token)

    async def let_go(self, key: SessionKey, token: str) -> None:
        """Release now, or keep trying in the background if the lock service is down."""
        try:
            await self.release(key, token)
        except AgentHostError as exc:
            log.warning("could not release the lock of %s (retrying): %s", key, exc)
            task = asyncio.create_task(self._release_later(key, token))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _release_later(self, key: SessionKey, token: str) -> None:
        """Keep trying to release while the lease lives: after an outage of the lock
        service, the session is free as soon as it is back, not only at expiry."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ttl
        while loop.time() < deadline:
            await asyncio.sleep(min(0.5, self.ttl / 5))
            try:
                await self.release(key, token)
                return
            except AgentHostError:
                continue

    async def _keep(self, key: SessionKey, token: str) -> None:
        """Renew the lease every third of its ttl while the turn runs."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                renewed = await self.renew(key, token)
                self.renewals += renewed
                if not renewed:
                    if await self.try_acquire(key, token):  # expired, but nobody took it
                        continue
                    self.lost += 1
                    log.warning(
                        "the lock of %s expired while its turn ran (held longer than %gs "
                        "without renewal); the store's seq check keeps the history consistent",
                        key,
                        self.ttl,
                    )
                    return
            except AgentHostError as exc:
                log.warning("could not renew the lock of %s: %s", key, exc)
