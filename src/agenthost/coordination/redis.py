"""RedisCoordinator: per-session locks in Redis, for many processes on many machines.

A lock is ``SET <prefix>-lock:<session> <token> NX PX <ttl>``; a background task
renews it (compare-and-``PEXPIRE``) while the turn runs, and release is a
compare-and-``DEL`` script, so a process only ever extends or frees its own
lock. A crashed holder's lock expires after ``ttl``.

URL options: ``prefix`` (the store prefix; locks live under ``<prefix>-lock``,
outside the store's own keys so erasing the store never drops a held lock),
``lock_ttl`` and ``lock_wait`` (seconds).
"""

from __future__ import annotations

from typing import Any

from agenthost.coordination.base import DEFAULT_TTL, DEFAULT_WAIT_TIMEOUT, LeaseCoordinator
from agenthost.coordination.base import option_seconds as _seconds
from agenthost.errors import MissingExtra, StoreUnavailable
from agenthost.keys import SessionKey
from agenthost.stores.redis import connect, parse_url, redact, session_id_of

try:
    from redis.exceptions import RedisError
except ModuleNotFoundError as exc:  # pragma: no cover - stores.redis above says it first
    raise MissingExtra("redis", "Redis support (store, coordination)") from exc

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisCoordinator(LeaseCoordinator):
    where = "another process (Redis lock)"

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        ttl: float | None = None,
        wait_timeout: float | None = None,
    ) -> None:
        self.url, options = parse_url(url)
        super().__init__(
            ttl=ttl if ttl is not None else _seconds(options, "lock_ttl", DEFAULT_TTL),
            wait_timeout=(
                wait_timeout
                if wait_timeout is not None
                else _seconds(options, "lock_wait", DEFAULT_WAIT_TIMEOUT)
            ),
        )
        self.prefix = f"{prefix or options.get('prefix') or 'agenthost'}-lock"
        self._client: Any = None
        self._renew: Any = None
        self._release: Any = None

    def __repr__(self) -> str:
        return f"RedisCoordinator({redact(self.url)!r}, ttl={self.ttl:g})"

    def lock_name(self, key: SessionKey) -> str:
        return f"{self.prefix}:{session_id_of(key)}"

    def _ensure_client(self) -> Any:
        if self._client is None:
            client = connect(self.url)
            self._renew = client.register_script(RENEW)
            self._release = client.register_script(RELEASE)
            self._client = client
        return self._client

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            f"Redis coordination at {redact(self.url)} is unavailable: {type(exc).__name__}: {exc}"
        )

    async def try_acquire(self, key: SessionKey, token: str) -> bool:
        client = self._ensure_client()
        try:
            return bool(await client.set(self.lock_name(key), token, nx=True, px=self._ttl_ms))
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def renew(self, key: SessionKey, token: str) -> bool:
        client = self._ensure_client()
        try:
            return bool(
                await self._renew(
                    keys=[self.lock_name(key)], args=[token, self._ttl_ms], client=client
                )
            )
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def release(self, key: SessionKey, token: str) -> None:
        client = self._ensure_client()
        try:
            await self._release(keys=[self.lock_name(key)], args=[token], client=client)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def ping(self) -> None:
        client = self._ensure_client()
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def close(self) -> None:
        await super().close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
