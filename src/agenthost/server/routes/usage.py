"""Usage: ``GET /v1/usage`` (the caller's own; an admin's: any tenant and user) and
``GET /v1/admin/usage`` (the admin view alone), one implementation.

Whose usage ``GET /v1/usage`` reports:

- a user credential: its own; ``user_id``/``tenant_id`` (query, or the ``X-User-Id`` /
  ``X-Tenant-Id`` headers) may only name itself, anything else is 403;
- a service credential: the one user of its tenant it names (required, as on every
  route); another tenant is 403;
- an admin: with ``tenant_id`` and/or ``user_id`` in the query, as ``GET /v1/admin/usage``
  (a name left out means every one: ``user_id=bob`` is every tenant's bob); with the
  headers, the user they name (in the admin's tenant unless ``X-Tenant-Id`` says) or
  every user of the ``X-Tenant-Id``; naming nobody, every tenant.

Days are UTC, ``since`` and ``until`` inclusive (default: the last 30 days).
``group_by`` is a comma-separated list of ``day``, ``agent``, ``model``, and for an
admin also ``tenant_id`` and ``user_id``. Usage of erased users is kept under the
user id ``(erased)`` of their tenant (see :func:`agenthost.usage.erase_user_usage`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from agenthost.errors import Forbidden, InvalidInput, NotFound
from agenthost.host import Host
from agenthost.server.deps import AdminIdentity, CurrentHost, CurrentIdentity, Identity
from agenthost.server.schemas import ERRORS, ID_PATTERN
from agenthost.usage import DIMENSIONS, UsageMeter, UsageRow, check_group_by, utc_day

router = APIRouter(tags=["usage"], responses=ERRORS)

MAX_DAYS = 400
OWN_GROUPS = ("day", "agent", "model")


class Counts(BaseModel):
    turns: int = Field(examples=[12])
    errors: int = Field(examples=[0])
    input_tokens: int = Field(examples=[5400])
    output_tokens: int = Field(examples=[1200])
    total_tokens: int = Field(examples=[6600])


class UsageGroup(Counts):
    day: str | None = Field(None, examples=["2025-01-31"])
    tenant_id: str | None = None
    user_id: str | None = None
    agent: str | None = Field(None, examples=["assistant"])
    model: str | None = Field(None, examples=["openai:gpt-4o-mini"])


class UsageReport(BaseModel):
    tenant_id: str | None = Field(description="The tenant reported on (all tenants: null)")
    user_id: str | None = Field(description="The user reported on (every user: null)")
    since: str
    until: str
    group_by: list[str]
    totals: Counts
    groups: list[UsageGroup]


Day = Annotated[
    dt.date | None, Query(description="first day (UTC, YYYY-MM-DD); default 30 days ago")
]
Until = Annotated[dt.date | None, Query(description="last day (UTC, YYYY-MM-DD); default today")]


def _meter(host: Host) -> UsageMeter:
    if host.usage is None:
        raise NotFound("usage metering is off on this server (AGENTHOST_USAGE=false)")
    return host.usage


def _days(host: Host, since: dt.date | None, until: dt.date | None) -> tuple[str, str]:
    last = until or dt.date.fromisoformat(utc_day(host.clock()))
    first = since or last - dt.timedelta(days=29)
    if first > last:
        raise InvalidInput("since must not be after until", field="since")
    if (last - first).days >= MAX_DAYS:
        raise InvalidInput(f"ask for at most {MAX_DAYS} days at a time", field="since")
    return first.isoformat(), last.isoformat()


def _report(
    rows: list[UsageRow],
    *,
    tenant_id: str | None,
    user_id: str | None,
    since: str,
    until: str,
    group_by: list[str],
) -> dict[str, Any]:
    total = UsageRow()
    for row in rows:
        total.add(row)
    counts = {k: v for k, v in total.to_dict().items() if k not in DIMENSIONS}
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "since": since,
        "until": until,
        "group_by": group_by,
        "totals": counts,
        "groups": [row.to_dict() for row in rows] if group_by else [],
    }


def _group_by(value: str, allowed: tuple[str, ...]) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    return list(check_group_by(names, allowed))


def _scope(
    identity: Identity, tenant_id: str | None, user_id: str | None
) -> tuple[str | None, str | None]:
    """The (tenant, user) a caller may read, ``None`` meaning every one (admins only)."""
    if not identity.admin:
        who = identity.principal(user_id)  # 403 for another user; 422 if a service names none
        if tenant_id is not None and tenant_id != who.tenant_id:
            raise Forbidden("this credential may read usage only in its own tenant")
        return who.tenant_id, who.user_id
    if tenant_id is None and user_id is None:  # the headers name whom, as on every route
        if identity.named_user is not None:
            who = identity.principal()
            return who.tenant_id, who.user_id
        return identity.named_tenant, None
    if identity.named_user not in (None, user_id) or identity.named_tenant not in (
        None,
        tenant_id,
    ):
        raise InvalidInput("the query and the X-User-Id / X-Tenant-Id headers disagree")
    return tenant_id, user_id  # as GET /v1/admin/usage: a name left out is every one


async def _usage(
    host: Host,
    *,
    tenant_id: str | None,
    user_id: str | None,
    since: dt.date | None,
    until: dt.date | None,
    group_by: str,
    allowed: tuple[str, ...],
) -> dict[str, Any]:
    meter = _meter(host)
    first, last = _days(host, since, until)
    groups = _group_by(group_by, allowed)
    rows = await meter.query(
        since=first,
        until=last,
        tenant_id=tenant_id,
        user_id=user_id,
        group_by=groups,  # type: ignore[arg-type]
    )
    return _report(
        rows, tenant_id=tenant_id, user_id=user_id, since=first, until=last, group_by=groups
    )


IdQuery = Annotated[str | None, Query(min_length=1, max_length=255, pattern=ID_PATTERN)]


@router.get(
    "/v1/usage",
    response_model=UsageReport,
    summary="The caller's usage (an admin's: any tenant or user), grouped",
)
async def usage(
    host: CurrentHost,
    identity: CurrentIdentity,
    tenant_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=ID_PATTERN,
            description="admins: one tenant (default: every tenant, or the admin's own "
            "with user_id); others: their own only",
        ),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=ID_PATTERN,
            description="admins: one user (default: every user); a service: the user it "
            "acts for; a user: itself only",
        ),
    ] = None,
    since: Day = None,
    until: Until = None,
    group_by: Annotated[
        str,
        Query(description="day, agent, model; admins also tenant_id, user_id (comma-separated)"),
    ] = "day",
) -> dict[str, Any]:
    tenant, user = _scope(identity, tenant_id, user_id)
    allowed = DIMENSIONS if identity.admin else OWN_GROUPS
    return await _usage(
        host,
        tenant_id=tenant,
        user_id=user,
        since=since,
        until=until,
        group_by=group_by,
        allowed=allowed,
    )


@router.get(
    "/v1/admin/usage",
    response_model=UsageReport,
    tags=["admin"],
    summary="Usage of any tenant (or all), grouped by tenant, user, agent, model or day",
)
async def admin_usage(
    host: CurrentHost,
    admin: AdminIdentity,
    tenant_id: IdQuery = None,
    user_id: IdQuery = None,
    since: Day = None,
    until: Until = None,
    group_by: Annotated[
        str, Query(description="tenant_id, user_id, agent, model, day (comma-separated)")
    ] = "tenant_id",
) -> dict[str, Any]:
    return await _usage(
        host,
        tenant_id=tenant_id,
        user_id=user_id,
        since=since,
        until=until,
        group_by=group_by,
        allowed=DIMENSIONS,
    )
