"""A user's data: export everything, or erase everything."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agenthost.server.deps import CurrentHost, CurrentIdentity
from agenthost.server.paths import UserPath
from agenthost.server.schemas import ERRORS, Deleted, UserExport

router = APIRouter(prefix="/v1/users", tags=["users"], responses=ERRORS)


@router.get(
    "/{user_id}/export",
    response_model=UserExport,
    summary="Everything stored about a user: sessions, messages, runs, memory",
)
async def export_user(
    user_id: UserPath, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    who = identity.principal(user_id)
    return await host.export_user(tenant_id=who.tenant_id, user_id=who.user_id)


@router.delete(
    "/{user_id}",
    response_model=Deleted,
    summary="Erase a user: every session, their memory, their name in the usage ledger",
)
async def erase_user(user_id: UserPath, host: CurrentHost, identity: CurrentIdentity) -> Deleted:
    who = identity.principal(user_id)
    deleted = await host.erase_user(tenant_id=who.tenant_id, user_id=who.user_id)
    return Deleted(deleted=deleted)
