"""PostgresCoordinator: per-session leases in a PostgreSQL table.

Why a lease row and not an advisory lock: an advisory lock belongs to a
database session, so holding one for a whole turn (seconds to minutes while a
model thinks) pins a pooled connection per running turn, and a server with
thousands of concurrent sessions would exhaust its pool and PostgreSQL's
``max_connections``. A lease row (token + expiry in ``session_leases``) costs one
short statement to take, one per ``ttl/3`` to renew and one to release; the
connection goes back to the pool in between. Expiry uses the database clock, so
the machines' clocks do not matter. A crashed holder blocks its session for at
most ``ttl``.

Folded into the store (:meth:`PostgresCoordinator.fold`, done by the Host when
the store is a :class:`~agenthost.stores.postgres.PostgresStore` on the same
database and schema), a hold costs no statement of its own: the turn's first
write takes the lease in the same statement (writing nothing if another
process holds it: the turn then waits for it and starts over on a fresh
copy), and its last write (the run finished) gives it back. A decision made on
what the store holds (a reload, a run left open) takes the lease first, by
itself. One keeper task renews, in the background, only leases held longer
than ``ttl/3`` (long turns); the coordinator then uses the store's pool.

URL options: the store's (``schema``, ``migrate``) plus ``lock_ttl`` and
``lock_wait`` (seconds). The lease table comes from the store's migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from agenthost.coordination.base import (
    DEFAULT_TTL,
    DEFAULT_WAIT_TIMEOUT,
    LeaseCoordinator,
    log,
    wait_for_turn,
)
from agenthost.coordination.base import option_seconds as _seconds
from agenthost.errors import AgentHostError
from agenthost.keys import SessionKey
from agenthost.stores.base import Lease
from agenthost.stores.postgres import (
    LazyPool,
    PostgresStore,
    apply_migrations,
    call,
    check_schema,
    parse_url,
    redact,
)
from agenthost.stores.postgres_writes import ACQUIRE_LEASE

if TYPE_CHECKING:
    from agenthost.locks import LeaseFolding
    from agenthost.stores.base import SessionStore

ACQUIRE = ACQUIRE_LEASE + " RETURNING token"

RENEW = """
UPDATE session_leases SET expires_at = clock_timestamp() + make_interval(secs => $5)
WHERE tenant_id = $1 AND user_id = $2 AND session_id = $3 AND token = $4
"""

RELEASE = """
DELETE FROM session_leases
WHERE tenant_id = $1 AND user_id = $2 AND session_id = $3 AND token = $4
"""


class PostgresCoordinator(LeaseCoordinator):
    where = "another process (PostgreSQL lease)"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        ttl: float | None = None,
        wait_timeout: float | None = None,
        max_size: int = 4,
    ) -> None:
        self.dsn, options = parse_url(url)
        super().__init__(
            ttl=ttl if ttl is not None else _seconds(options, "lock_ttl", DEFAULT_TTL),
            wait_timeout=(
                wait_timeout
                if wait_timeout is not None
                else _seconds(options, "lock_wait", DEFAULT_WAIT_TIMEOUT)
            ),
        )
        self.schema = check_schema(schema if schema is not None else options.get("schema"))
        self.migrate = options.get("migrate", "true").lower() not in ("0", "false", "no")
        self.max_size = max_size
        self._lazy = LazyPool(  # when not folded into the store
            self.dsn,
            schema=self.schema,
            max_size=max_size,
            setup=functools.partial(apply_migrations, schema=self.schema) if self.migrate else None,
        )
        self._store: PostgresStore | None = None  # folded into this store (see fold)
        self._holds: dict[SessionKey, Lease] = {}  # folded holds in progress here
        self._keeper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"PostgresCoordinator({redact(self.dsn)!r}, ttl={self.ttl:g})"

    # -- folded into the store's writes ------------------------------------------------

    def fold(self, store: SessionStore) -> LeaseFolding | None:
        """Let ``store``'s writes take and give back the leases, if it is this database."""
        if not (
            isinstance(store, PostgresStore)
            and store.dsn == self.dsn
            and store.schema == self.schema
        ):
            return None
        self._store = store
        return self

    @asynccontextmanager
    async def hold(self, key: SessionKey, *, wait: bool) -> AsyncIterator[None]:
        if self._store is None or key in self._holds:  # not folded (or a nested hold)
            async with super().hold(key, wait=wait):
                yield
            return
        token = f"{random.getrandbits(128):032x}"  # unique, not secret: no system call
        lease = self._holds[key] = Lease(key, token, self.ttl, wait)
        keeper = self._keeper
        if keeper is None or keeper.done():
            self._keeper = asyncio.create_task(self._keep_all(), name="agenthost-leases")
        try:
            yield
        finally:
            del self._holds[key]
            if lease.held:  # the last write did not give it back (a failure, a patch)
                lease.held = False
                await self.let_go(key, lease.token)

    def lease(self, key: SessionKey) -> Lease | None:
        return self._holds.get(key)

    async def acquire(self, lease: Lease) -> None:
        if lease.held:
            return
        key = lease.key
        await wait_for_turn(
            key,
            lambda: self.try_acquire(key, lease.token),
            wait=lease.wait,
            wait_timeout=self.wait_timeout,
            where=self.where,
        )
        lease.held, lease.since = True, time.monotonic()

    async def _keep_all(self) -> None:
        """Renew folded leases held longer than a third of their ttl, while holds last."""
        while self._holds:
            await asyncio.sleep(self.ttl / 6)
            now = time.monotonic()
            due = [x for x in self._holds.values() if x.held and now - x.since >= self.ttl / 3]
            for lease in due:
                with contextlib.suppress(AgentHostError):  # logged; retried next round
                    await self._renew_held(lease)

    async def _renew_held(self, lease: Lease) -> None:
        key = lease.key
        try:
            renewed = await self.renew(key, lease.token) or await self.try_acquire(
                key, lease.token
            )  # expired, but nobody took it
        except AgentHostError as exc:
            log.warning("could not renew the lock of %s: %s", key, exc)
            raise
        if not lease.held or self._holds.get(key) is not lease:
            return  # given back meanwhile
        if renewed:
            self.renewals += 1
            lease.since = time.monotonic()
            return
        self.lost += 1
        lease.held = False  # its next write must take it again, or wait
        log.warning(
            "the lock of %s expired while its turn ran (held longer than %gs without "
            "renewal); the store's revision check keeps the history consistent",
            key,
            self.ttl,
        )

    # -- by itself -----------------------------------------------------------------

    async def _ensure_pool(self) -> Any:
        store = self._store
        if store is not None:  # folded: one pool, the store's
            if store.pool is None:
                await store.open()
            return store.pool
        return await self._lazy.get()

    def _args(self, key: SessionKey, token: str) -> tuple[Any, ...]:
        return (key.tenant_id, key.user_id, key.session_id, token)

    async def try_acquire(self, key: SessionKey, token: str) -> bool:
        pool = await self._ensure_pool()
        args = (*self._args(key, token), self.ttl)
        won = await call(pool, lambda conn: conn.fetchval(ACQUIRE, *args))
        return won is not None

    async def renew(self, key: SessionKey, token: str) -> bool:
        pool = await self._ensure_pool()
        args = (*self._args(key, token), self.ttl)
        status: str = await call(pool, lambda conn: conn.execute(RENEW, *args))
        return status.endswith(" 1")

    async def release(self, key: SessionKey, token: str) -> None:
        pool = await self._ensure_pool()
        args = self._args(key, token)
        await call(pool, lambda conn: conn.execute(RELEASE, *args))

    async def ping(self) -> None:
        pool = await self._ensure_pool()
        await call(pool, lambda conn: conn.fetchval("SELECT 1"))

    async def close(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await super().close()
        await self._lazy.close()
