"""Admin routes: stats, live sessions, eviction, cleanup. All need an admin credential."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from agenthost.server.deps import AdminIdentity, CurrentHost
from agenthost.server.schemas import ERRORS, ID_PATTERN, CleanupResult, Evicted, LiveSessions, Stats

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERRORS)

IdPath = Annotated[str, Path(min_length=1, max_length=255, pattern=ID_PATTERN)]


@router.get("/stats", response_model=Stats, summary="Session counts, limits and lifecycle totals")
async def stats(host: CurrentHost, admin: AdminIdentity) -> dict[str, Any]:
    return await host.stats()


@router.get(
    "/sessions", response_model=LiveSessions, summary="Sessions live in memory, with their times"
)
async def live_sessions(host: CurrentHost, admin: AdminIdentity) -> dict[str, Any]:
    return {"sessions": host.live_sessions()}


@router.delete(
    "/sessions/{tenant_id}/{user_id}/{session_id}",
    response_model=Evicted,
    summary="Evict one idle session from memory (it stays in the store)",
)
async def evict(
    tenant_id: IdPath, user_id: IdPath, session_id: IdPath, host: CurrentHost, admin: AdminIdentity
) -> Evicted:
    return Evicted(evicted=host.evict(tenant_id=tenant_id, user_id=user_id, session_id=session_id))


@router.post(
    "/cleanup",
    response_model=CleanupResult,
    summary="Expire idle live sessions and apply retention now",
)
async def cleanup(host: CurrentHost, admin: AdminIdentity) -> dict[str, int]:
    return await host.cleanup()
