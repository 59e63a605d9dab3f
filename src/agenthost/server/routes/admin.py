"""Admin routes: stats, recent activity, live sessions, eviction, cleanup.

All need an admin credential.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from agenthost.server.deps import AdminIdentity, CurrentHost
from agenthost.server.paths import SessionPath, TenantPath, UserPath
from agenthost.server.schemas import ERRORS, CleanupResult, Evicted, LiveSessions, Stats

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERRORS)


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
    tenant_id: TenantPath,
    user_id: UserPath,
    session_id: SessionPath,
    host: CurrentHost,
    admin: AdminIdentity,
) -> Evicted:
    return Evicted(evicted=host.evict(tenant_id=tenant_id, user_id=user_id, session_id=session_id))


@router.post(
    "/cleanup",
    response_model=CleanupResult,
    summary="Expire idle live sessions and apply retention now",
)
async def cleanup(host: CurrentHost, admin: AdminIdentity) -> dict[str, int]:
    return await host.cleanup()


class SeriesPoint(BaseModel):
    start: float = Field(description="Start of the bucket (Unix seconds)")
    turns: int
    turns_per_second: float
    failed: int
    interrupted: int
    http_errors: int = Field(description="Responses with a 5xx status")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    total_sessions: float | None = Field(description="Last value seen in the bucket, if any")
    live_sessions: float | None
    active_sessions: float | None
    evictions: float | None
    expirations: float | None


class Series(BaseModel):
    bucket_seconds: float
    points: list[SeriesPoint]


@router.get(
    "/series",
    response_model=Series,
    summary="This process's recent activity in small time buckets (the dashboard's charts)",
)
async def series(request: Request, host: CurrentHost, admin: AdminIdentity) -> dict[str, Any]:
    recorder = request.app.state.metrics.series
    recorder.record_gauges(await host.stats())
    return {"bucket_seconds": recorder.bucket_seconds, "points": recorder.points()}
