"""Quotas in the server's settings: the ``[quotas]`` TOML table (or ``AGENTHOST_QUOTAS``
as JSON), and building the :class:`~agenthost.quotas.Quotas` a server uses::

    [quotas.user]                 # every user
    requests_per_minute = 60
    concurrent_turns = 2
    [quotas.tenant]               # every tenant, all its users together
    tokens_per_day = 5_000_000
    [quotas.tenants.acme.user]    # users of tenant acme
    requests_per_minute = 600
    [[quotas.users]]              # one user
    tenant_id = "acme"
    user_id = "batch-bot"
    requests_per_minute = 0       # 0: no limit
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agenthost.quotas.core import DEFAULT_LEASE, DEFAULT_REFRESH, Quotas
from agenthost.quotas.limits import Limits, Overrides, QuotaPolicy, TenantLimits


class LimitTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=0)
    concurrent_turns: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    live_sessions: int | None = Field(default=None, ge=0)

    def limits(self) -> Limits:
        return Limits(
            self.requests_per_minute, self.concurrent_turns, self.tokens_per_day, self.live_sessions
        )


class TenantTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: LimitTable = LimitTable()
    user: LimitTable = LimitTable()


class UserTable(LimitTable):
    tenant_id: str = "default"
    user_id: str = Field(min_length=1, max_length=255)


class QuotaSettings(BaseModel):
    """``user`` and ``tenant`` defaults, ``tenants`` and ``users`` overrides, and tuning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: LimitTable = LimitTable()
    tenant: LimitTable = LimitTable()
    tenants: dict[str, TenantTable] = Field(default_factory=dict)
    users: list[UserTable] = Field(default_factory=list)
    lease_seconds: float = Field(
        default=DEFAULT_LEASE,
        gt=0,
        description="a running turn's lease (renewed; a crash frees it)",
    )
    refresh_seconds: float = Field(
        default=DEFAULT_REFRESH, gt=0, description="how often a process re-reads admins' overrides"
    )
    fail_open: bool = Field(
        default=False, description="admit when the quota backend is unreachable"
    )

    def policy(self) -> QuotaPolicy:
        tenants = {
            name: TenantLimits(t.tenant.limits(), t.user.limits())
            for name, t in self.tenants.items()
        }
        users = {(u.tenant_id, u.user_id): u.limits() for u in self.users}
        return QuotaPolicy(
            user=self.user.limits(),
            tenant=self.tenant.limits(),
            overrides=Overrides(tenants, users),
        )

    @property
    def configured(self) -> bool:
        """Whether the settings set any limit (else quotas stay off unless shared)."""
        return self.policy().may_limit


def build_quotas(
    config: QuotaSettings,
    *,
    store_url: str,
    coordination_url: str | None,
    workers: int,
    session_ttl: float | None,
) -> Quotas | None:
    """The server's quotas: limits from ``config``, counted where the deployment shares state.

    ``None`` when nothing is configured and counters could not be shared (SQLite with
    several workers): there is nothing to count, and admins cannot set overrides.
    A deployment that limits nothing pays nothing per request either way.
    """
    from agenthost.errors import ConfigError
    from agenthost.quotas import choose_backend

    try:
        backend = choose_backend(store_url, coordination_url, workers)
    except ConfigError:
        if config.configured:
            raise
        return None
    return Quotas(
        config.policy(),
        backend=backend,
        lease_seconds=config.lease_seconds,
        refresh_seconds=config.refresh_seconds,
        session_ttl=session_ttl,
        fail_open=config.fail_open,
    )
