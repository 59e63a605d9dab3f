"""Liveness, readiness (the store answers) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from agenthost.errors import AgentHostError
from agenthost.server.deps import CurrentHost
from agenthost.server.errors import from_exception
from agenthost.server.metrics import Metrics
from agenthost.server.schemas import ERRORS, Health

router = APIRouter(tags=["health"])


# HEAD too: load balancers probe with it. Documented once, under GET.
@router.head("/healthz", include_in_schema=False, response_model=None)
@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.head("/readyz", include_in_schema=False, response_model=None)
@router.get(
    "/readyz",
    response_model=Health,
    responses={503: ERRORS[503]},
    summary="The store (and the cross-process lock service) answer: ready for traffic",
)
async def readyz(host: CurrentHost) -> Health | Response:
    try:
        await host.ping()
    except AgentHostError as exc:
        return from_exception(exc)
    return Health(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
