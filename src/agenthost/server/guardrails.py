"""The server's guardrails, built from settings: quotas, usage metering, traces.

:func:`host_options` gives ``build_host`` the Host's ``quotas``, ``usage`` and
``tracing``; :func:`install` adds what the app needs for them (the trace-context
middleware when tracing is on). Each is built only when its settings ask: with
``otel = false`` nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from agenthost.quotas.config import build_quotas
from agenthost.settings import Settings
from agenthost.usage import UsageMeter, open_ledger


def host_options(settings: Settings) -> dict[str, Any]:
    tracing = None
    if settings.otel:
        from agenthost.tracing import Tracing, configure_provider

        configure_provider()
        tracing = Tracing(capture_content=settings.otel_content)
    usage = (
        UsageMeter(open_ledger(settings.store), flush_interval=settings.usage_flush_interval)
        if settings.usage
        else None
    )
    quotas = build_quotas(
        settings.quotas,
        store_url=settings.store,
        coordination_url=settings.coordination,
        workers=settings.workers,
        session_ttl=settings.session_ttl,
    )
    return {"quotas": quotas, "usage": usage, "tracing": tracing}


def install(app: FastAPI, settings: Settings) -> None:
    if settings.otel:
        from agenthost.tracing import TraceContextMiddleware

        app.add_middleware(TraceContextMiddleware)
