"""What a tenant or a user may use: :class:`Limits`, and the :class:`QuotaPolicy` that
resolves the limits of one caller from defaults and overrides.

Four limits, each counted for a user and for a tenant as a whole:

===================  ==========================================================
``requests_per_minute``  turns started in any 60-second window (sliding)
``concurrent_turns``     turns running at the same moment
``tokens_per_day``       input + output tokens of the UTC day
``live_sessions``        sessions used within the session TTL (idle ones drop out)
===================  ==========================================================

A field left ``None`` is not set at that level: the level below decides. A
value of ``0`` lifts the limit at that level (no limit), so one premium user
can go without the default every other user has. Resolution, field by field,
the last level that sets a field wins::

    user limit   = defaults.user  <- tenant override .user   <- user override
    tenant limit = defaults.tenant <- tenant override .tenant
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from agenthost.errors import InvalidInput

LIMIT_NAMES = ("requests_per_minute", "concurrent_turns", "tokens_per_day", "live_sessions")


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one level; ``None`` = not set here, ``0`` = no limit."""

    requests_per_minute: int | None = None
    concurrent_turns: int | None = None
    tokens_per_day: int | None = None
    live_sessions: int | None = None

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise InvalidInput(f"{name} must be a whole number >= 0 (0: no limit)", field=name)

    @classmethod
    def of(cls, data: Mapping[str, Any] | Limits | None) -> Limits:
        """From a mapping such as a TOML table or a JSON body; unknown names are refused."""
        if data is None:
            return cls()
        if isinstance(data, Limits):
            return data
        unknown = sorted(set(data) - set(LIMIT_NAMES))
        if unknown:
            raise InvalidInput(
                f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(LIMIT_NAMES)}",
                field=unknown[0],
            )
        return cls(**{k: data[k] for k in LIMIT_NAMES if k in data})

    def over(self, base: Limits) -> Limits:
        """These limits on top of ``base``: what this level sets wins."""
        changes = {n: v for n in LIMIT_NAMES if (v := getattr(self, n)) is not None}
        return replace(base, **changes) if changes else base

    def to_dict(self) -> dict[str, int]:
        """The fields set at this level."""
        return {n: v for n in LIMIT_NAMES if (v := getattr(self, n)) is not None}

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    @property
    def active(self) -> bool:
        """Whether any limit is actually enforced (set and not 0)."""
        return any(getattr(self, n) for n in LIMIT_NAMES)


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """One tenant's override: its own total (``tenant``) and its users' default (``user``)."""

    tenant: Limits = NO_LIMITS
    user: Limits = NO_LIMITS

    @classmethod
    def of(cls, data: Mapping[str, Any] | TenantLimits | None) -> TenantLimits:
        if data is None:
            return cls()
        if isinstance(data, TenantLimits):
            return data
        unknown = sorted(set(data) - {"tenant", "user"})
        if unknown:
            raise InvalidInput(
                f"a tenant's limits are {{'tenant': {{...}}, 'user': {{...}}}}, not {unknown[0]!r}",
                field=unknown[0],
            )
        return cls(Limits.of(data.get("tenant")), Limits.of(data.get("user")))

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {"tenant": self.tenant.to_dict(), "user": self.user.to_dict()}

    @property
    def empty(self) -> bool:
        return self.tenant.empty and self.user.empty


@dataclass(frozen=True, slots=True)
class Overrides:
    """Per-tenant and per-user overrides (from settings, or set by an admin at run time)."""

    tenants: Mapping[str, TenantLimits] = field(default_factory=dict)
    users: Mapping[tuple[str, str], Limits] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.tenants and not self.users

    def merged(self, other: Overrides) -> Overrides:
        """``other`` on top of these (an admin's overrides over the settings' ones)."""
        tenants = dict(self.tenants)
        for name, limits in other.tenants.items():
            mine = tenants.get(name)
            tenants[name] = (
                limits
                if mine is None
                else TenantLimits(limits.tenant.over(mine.tenant), limits.user.over(mine.user))
            )
        users = dict(self.users)
        for who, own in other.users.items():
            base = users.get(who)
            users[who] = own if base is None else own.over(base)
        return Overrides(tenants, users)


@dataclass(frozen=True, slots=True)
class Effective:
    """The limits that apply to one request: the user's and the tenant's."""

    user: Limits
    tenant: Limits

    @property
    def active(self) -> bool:
        return self.user.active or self.tenant.active


class QuotaPolicy:
    """Defaults plus overrides; :meth:`limits_for` answers from memory (no I/O)."""

    __slots__ = ("_cache", "default_tenant", "default_user", "may_limit", "overrides")

    def __init__(
        self,
        *,
        user: Limits | Mapping[str, Any] | None = None,
        tenant: Limits | Mapping[str, Any] | None = None,
        overrides: Overrides | None = None,
    ) -> None:
        self.default_user = Limits.of(user)
        self.default_tenant = Limits.of(tenant)
        self.overrides = overrides or Overrides()
        self._cache: dict[tuple[str, str], Effective] = {}
        self.may_limit = self._may_limit()
        """False when no level sets any limit: then no request is ever counted."""

    def replace_overrides(self, overrides: Overrides) -> None:
        self.overrides = overrides
        self._cache = {}
        self.may_limit = self._may_limit()

    def _may_limit(self) -> bool:
        if self.default_user.active or self.default_tenant.active:
            return True
        over = self.overrides
        return any(t.tenant.active or t.user.active for t in over.tenants.values()) or any(
            u.active for u in over.users.values()
        )

    def limits_for(self, tenant_id: str, user_id: str) -> Effective:
        who = (tenant_id, user_id)
        found = self._cache.get(who)
        if found is not None:
            return found
        tenant = self.overrides.tenants.get(tenant_id)
        user = self.default_user
        tenant_limits = self.default_tenant
        if tenant is not None:
            user = tenant.user.over(user)
            tenant_limits = tenant.tenant.over(tenant_limits)
        own = self.overrides.users.get(who)
        if own is not None:
            user = own.over(user)
        effective = Effective(user, tenant_limits)
        if len(self._cache) >= 100_000:  # bounded: one entry per recent caller
            self._cache.clear()
        self._cache[who] = effective
        return effective
