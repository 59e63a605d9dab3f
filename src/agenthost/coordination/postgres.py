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

URL options: the store's (``schema``, ``migrate``) plus ``lock_ttl`` and
``lock_wait`` (seconds). The lease table comes from the store's migrations.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agenthost.coordination.base import DEFAULT_TTL, DEFAULT_WAIT_TIMEOUT, LeaseCoordinator
from agenthost.coordination.base import option_seconds as _seconds
from agenthost.keys import SessionKey
from agenthost.stores.postgres import (
    apply_migrations,
    call,
    check_schema,
    create_pool,
    parse_url,
    redact,
)

ACQUIRE = """
INSERT INTO session_leases AS lease (tenant_id, user_id, session_id, token, expires_at)
VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))
ON CONFLICT (tenant_id, user_id, session_id) DO UPDATE
    SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
    WHERE lease.expires_at < clock_timestamp()
RETURNING token
"""

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
        self._pool: Any = None
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresCoordinator({redact(self.dsn)!r}, ttl={self.ttl:g})"

    async def _ensure_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                pool = await create_pool(
                    self.dsn,
                    schema=self.schema,
                    min_size=0,
                    max_size=self.max_size,
                    connect_timeout=5.0,
                    command_timeout=10.0,
                )
                if self.migrate:
                    try:
                        await call(pool, lambda conn: apply_migrations(conn, self.schema))
                    except BaseException:
                        pool.terminate()
                        raise
                self._pool = pool
        return self._pool

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
        await super().close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
