"""Admin routes for quotas: see the limits in force, set and remove overrides.

An override set here is stored in the quota backend (Redis or PostgreSQL), so
every process applies it: at once in the process that set it, within
``quotas.refresh_seconds`` in the others. Overrides from the settings stay as
they are; one set here wins over them field by field. ``0`` lifts a limit,
``null`` (or leaving a field out) inherits it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from agenthost.errors import NotFound
from agenthost.host import Host
from agenthost.quotas import Quotas, TenantLimits
from agenthost.quotas.config import LimitTable, TenantTable
from agenthost.server.deps import AdminIdentity, CurrentHost
from agenthost.server.schemas import ERRORS, ID_PATTERN

router = APIRouter(prefix="/v1/admin/quotas", tags=["admin"], responses=ERRORS)

IdPath = Annotated[str, Path(min_length=1, max_length=255, pattern=ID_PATTERN)]


class UserOverride(BaseModel):
    tenant_id: str
    user_id: str
    limits: LimitTable


class QuotaOverview(BaseModel):
    backend: str = Field(description="Where counters live: memory, redis or postgres")
    defaults: TenantTable = Field(description="Limits of every tenant and of every user")
    tenants: dict[str, TenantTable] = Field(description="Per-tenant overrides in force")
    users: list[UserOverride] = Field(description="Per-user overrides in force")
    stored_tenants: dict[str, TenantTable] = Field(description="Those set by an admin")
    stored_users: list[UserOverride] = Field(description="Those set by an admin")


class EffectiveLimits(BaseModel):
    tenant_id: str
    user_id: str
    user: LimitTable = Field(description="The user's own limits (0 or absent: none)")
    tenant: LimitTable = Field(description="The limits of the tenant as a whole")


class Removed(BaseModel):
    removed: bool


async def _quotas(host: Host) -> Quotas:
    """The host's quotas, once the host (and so its counters' backend) has started."""
    if host.quotas is None:
        raise NotFound(
            "quotas are off on this server: several SQLite workers cannot share counters; "
            "give --coordination redis://... or use a postgresql:// store"
        )
    await host.start()
    return host.quotas


def _backend_name(quotas: Quotas) -> str:
    name = type(quotas.backend).__name__.removesuffix("QuotaBackend").lower()
    return name or "custom"


def _tenants(tenants: Any) -> dict[str, Any]:
    return {name: t.to_dict() for name, t in tenants.items()}


def _users(users: Any) -> list[dict[str, Any]]:
    return [
        {"tenant_id": t, "user_id": u, "limits": limits.to_dict()}
        for (t, u), limits in sorted(users.items())
    ]


@router.get("", response_model=QuotaOverview, summary="Default limits and every override")
async def overview(host: CurrentHost, admin: AdminIdentity) -> dict[str, Any]:
    quotas = await _quotas(host)
    stored = await quotas.stored_overrides()
    await quotas.refresh()
    policy = quotas.policy
    return {
        "backend": _backend_name(quotas),
        "defaults": {
            "tenant": policy.default_tenant.to_dict(),
            "user": policy.default_user.to_dict(),
        },
        "tenants": _tenants(policy.overrides.tenants),
        "users": _users(policy.overrides.users),
        "stored_tenants": _tenants(stored.tenants),
        "stored_users": _users(stored.users),
    }


@router.get(
    "/tenants/{tenant_id}/users/{user_id}",
    response_model=EffectiveLimits,
    summary="The limits that apply to one user now",
)
async def effective(
    tenant_id: IdPath, user_id: IdPath, host: CurrentHost, admin: AdminIdentity
) -> dict[str, Any]:
    quotas = await _quotas(host)
    await quotas.refresh()
    limits = quotas.limits_for(tenant_id, user_id)
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "user": limits.user.to_dict(),
        "tenant": limits.tenant.to_dict(),
    }


@router.put(
    "/tenants/{tenant_id}",
    response_model=TenantTable,
    summary="Set a tenant's override: its total (tenant) and its users' default (user)",
)
async def set_tenant(
    tenant_id: IdPath, body: TenantTable, host: CurrentHost, admin: AdminIdentity
) -> TenantTable:
    quotas = await _quotas(host)
    await quotas.set_tenant(tenant_id, TenantLimits(body.tenant.limits(), body.user.limits()))
    return body


@router.delete("/tenants/{tenant_id}", response_model=Removed, summary="Remove a tenant's override")
async def remove_tenant(tenant_id: IdPath, host: CurrentHost, admin: AdminIdentity) -> Removed:
    quotas = await _quotas(host)
    had = tenant_id in (await quotas.stored_overrides()).tenants
    await quotas.set_tenant(tenant_id, None)
    return Removed(removed=had)


@router.put(
    "/tenants/{tenant_id}/users/{user_id}",
    response_model=LimitTable,
    summary="Set one user's override",
)
async def set_user(
    tenant_id: IdPath, user_id: IdPath, body: LimitTable, host: CurrentHost, admin: AdminIdentity
) -> LimitTable:
    quotas = await _quotas(host)
    await quotas.set_user(tenant_id, user_id, body.limits())
    return body


@router.delete(
    "/tenants/{tenant_id}/users/{user_id}",
    response_model=Removed,
    summary="Remove one user's override",
)
async def remove_user(
    tenant_id: IdPath, user_id: IdPath, host: CurrentHost, admin: AdminIdentity
) -> Removed:
    quotas = await _quotas(host)
    had = (tenant_id, user_id) in (await quotas.stored_overrides()).users
    await quotas.set_user(tenant_id, user_id, None)
    return Removed(removed=had)
