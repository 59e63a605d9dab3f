"""``create_app(settings)``: the FastAPI app around one Host. No module-level app or Host.

The Host serves one agent or several (``--agents``, ``[agents.<name>]`` tables):
see :func:`build_agents`.

The app's state holds ``settings``, ``host``, ``authenticator`` and ``metrics``;
routers reach them through the dependencies in :mod:`agenthost.server.deps`.
To add a router, list its module in :data:`ROUTE_MODULES`.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from agenthost import __version__
from agenthost.bootstrap import build_host
from agenthost.errors import MissingExtra
from agenthost.extras import installed
from agenthost.host import Host
from agenthost.server import errors, lean
from agenthost.server.auth import build_authenticator
from agenthost.server.cors import cors_middleware
from agenthost.server.limits import BodyLimitMiddleware
from agenthost.server.metrics import Metrics, MetricsObserver, RequestMetricsMiddleware
from agenthost.server.paths import IdPathMiddleware
from agenthost.server.proxy import root_path_middleware
from agenthost.server.requestid import RequestIdMiddleware
from agenthost.settings import Settings

log = logging.getLogger("agenthost.server")

ROUTE_MODULES = (
    "agenthost.server.routes.chat",
    "agenthost.server.routes.agents",
    "agenthost.server.routes.runs",
    "agenthost.server.routes.sessions",
    "agenthost.server.routes.users",
    "agenthost.server.routes.memories",
    "agenthost.server.routes.admin",
    "agenthost.server.routes.health",
    "agenthost.server.routes.web",
    "agenthost.server.routes.docs",
    "agenthost.server.routes.usage",
    "agenthost.server.routes.quotas",
    "agenthost.server.openai_compat",
    "agenthost.server.a2a",
)

OPTIONAL_ROUTES = {
    "agenthost.server.a2a": ("a2a", "A2A", ("/a2a", "/.well-known/agent-card.json")),
}
"""Route modules that need an extra: module -> (extra, feature, paths to answer without it)."""

DESCRIPTION = """One agent, many users: every user's sessions are isolated and persistent.

Authenticate with `Authorization: Bearer <api key or JWT>` (unless the server runs
with `--auth none`). Service and admin credentials name the user they act for with
`user_id` in the body or the `X-User-Id` header. Errors are
`{"error": {"code": ..., "message": ..., "request_id": ...}}`; every response has an
`X-Request-Id` header (yours, if you sent a valid one).
"""


class _App(FastAPI):
    """FastAPI with the edge layers (request id, CORS, path prefix) outermost: outside
    Starlette's error middleware, so a 500 has the request id and CORS headers too."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        app = super().build_middleware_stack()
        lean_asgi = getattr(self.state, "lean_asgi", True)
        if lean_asgi and not settings.otel:  # tracing reads traceparent in its middleware
            app = lean.LeanChat(app, self, self.state.metrics, settings.max_body_bytes)
        app = root_path_middleware(app, settings)
        return RequestIdMiddleware(cors_middleware(app, settings))


def create_app(settings: Settings | None = None, *, host: Host | None = None) -> FastAPI:
    """Build the app. ``host`` (for tests and embedding) replaces the one settings describe;
    its observer is then the caller's business."""
    settings = settings or Settings.load()
    metrics = Metrics()
    if host is None:
        host = build_host(settings, observer=MetricsObserver(metrics))
    metrics.watch(host)
    served = host

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await served.start()
        fields = {"agent": served.agent.name, "agents": served.agents.names}
        log.info("serving", extra={"fields": fields})
        try:
            yield
        finally:
            await served.close()

    app = _App(
        title="agenthost",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package by routes.docs: no CDN
        redoc_url=None,
        **_native_telemetry(settings),
    )
    app.state.settings = settings
    app.state.host = host
    app.state.metrics = metrics
    app.state.authenticator = build_authenticator(settings)
    errors.install(app)
    for name in ROUTE_MODULES:
        app.include_router(_router(name))
    lean.install(app)
    app.add_middleware(IdPathMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.otel:  # the request's traceparent becomes the turns' parent span
        from agenthost.tracing import TraceContextMiddleware

        app.add_middleware(TraceContextMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app


def _native_telemetry(settings: Settings) -> dict[str, Any]:
    """FastAPI's own OpenTelemetry (FastAPI 0.16x) only with ``--otel``: otherwise it
    asks the global providers whether to trace on every request, for nothing."""
    if settings.otel or "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _router(module: str) -> APIRouter:
    """The module's router; for an optional one whose extra is not installed, routes that
    answer 501 with the ``pip install`` hint instead."""
    optional = OPTIONAL_ROUTES.get(module)
    if optional is None or installed(optional[0]):
        router: APIRouter = importlib.import_module(module).router
        return router
    extra, feature, paths = optional
    log.warning("%s is off: %s", feature, MissingExtra(extra, feature).message)
    stub = APIRouter(include_in_schema=False)

    async def unavailable() -> None:
        raise MissingExtra(extra, feature)

    for path in paths:
        stub.add_api_route(path, unavailable, methods=["GET", "POST"])
    return stub


def freeze_startup_heap() -> None:
    """Put everything allocated so far (modules, the app, its routes) out of the cyclic
    GC's reach, for a process about to serve: a full collection then walks only what
    serving allocated, so its pauses stay short (they were the p99 of the HTTP benchmark).
    """
    gc.collect()
    gc.freeze()


def app_from_environment() -> FastAPI:
    """ASGI factory for uvicorn worker processes (``agenthost serve --workers N``)."""
    from agenthost.server.logs import configure_logging
    from agenthost.settings import settings_from_environment

    settings = settings_from_environment()
    configure_logging(settings.log_level)
    app = create_app(settings)
    freeze_startup_heap()
    return app
