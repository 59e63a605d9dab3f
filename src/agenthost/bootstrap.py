"""From settings to a running Host: the one place every face builds it.

``agenthost serve`` (through :func:`agenthost.server.create_app`), the CLI's
in-process commands and the benchmarks call :func:`build_host`; none of them
assembles a store, a coordinator, models or an agent by itself::

    settings = Settings.load({"store": "sqlite:///agenthost.db"})
    async with build_host(settings) as host:
        await host.ping()               # the store and the lock service answer
        await host.run("hi", user_id="alice")

Nothing here imports the HTTP server: the CLI and embedders use it without FastAPI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from agenthost.agent import Agent
from agenthost.agents import AgentSet, agent_from_table, import_path, load_agents, mcp_sources
from agenthost.compaction import Compaction
from agenthost.errors import AgentHostError, ConfigError, StoreUnavailable
from agenthost.host import Host
from agenthost.locks import Coordinator
from agenthost.memory import LongTermMemory
from agenthost.models.failover import RetryPolicy
from agenthost.models.providers import Provider, builtin_providers
from agenthost.runs import RunOptions
from agenthost.settings import Settings
from agenthost.turn import TurnObserver
from agenthost.urls import redact


def load_agent(path: str) -> Agent:
    """Import ``module:attribute``; the attribute is an Agent or a function returning one.

    Like uvicorn, the current directory is importable (see
    :func:`agenthost.agents.import_path`): ``--agent myagent:agent`` finds ``./myagent.py``.
    """
    target = import_path(path, "agent")
    if not isinstance(target, Agent) and callable(target):
        target = target()
    if not isinstance(target, Agent):
        raise ConfigError(f"{path!r} is a {type(target).__name__}, not an agenthost.Agent")
    return target


def build_agent(settings: Settings) -> Agent:
    """``settings.agent`` imported, else the built-in agent the settings describe; with the
    MCP servers of the ``[mcp.<server>]`` tables added to its own."""
    if settings.agent:
        agent = load_agent(settings.agent)
    else:
        memory = None
        if settings.memory != "off":
            memory = LongTermMemory(extract=settings.memory == "extract")
        agent = Agent(
            name=settings.agent_name,
            model=settings.model,
            instructions=settings.instructions,
            history_window=settings.history_window,
            long_term_memory=memory,
            compaction=Compaction() if settings.compaction else None,
        )
    if not settings.mcp:
        return agent
    tables = {name: table.model_dump() for name, table in settings.mcp.items()}
    return dataclasses.replace(agent, mcp=(*agent.mcp, *mcp_sources(tables)))


def build_agents(settings: Settings) -> AgentSet:
    """The agents to serve: ``agents`` (an import path or tables), else the one agent."""
    if isinstance(settings.agents, str):
        agents = load_agents(settings.agents)
    elif settings.agents:
        agents = [
            agent_from_table(
                name,
                table.model_dump(exclude_defaults=True),
                default_model=settings.model,
                history_window=settings.history_window,
            )
            for name, table in settings.agents.items()
        ]
    else:
        agent = build_agent(settings)
        if settings.fallback_models and not settings.agent:
            agent = dataclasses.replace(agent, fallback_models=tuple(settings.fallback_models))
        agents = [agent]
    return AgentSet(agents, default=settings.default_agent)


def build_providers(settings: Settings) -> list[Provider]:
    """The built-in providers and the ``[providers.<name>]`` tables, each with its timeout
    (a table's own, else ``model_timeout``)."""
    configured = [
        Provider(
            name,
            table.kind,
            table.base_url,
            table.api_key_env,
            timeout=table.timeout if table.timeout is not None else settings.model_timeout,
        )
        for name, table in settings.providers.items()
    ]
    builtin = [dataclasses.replace(p, timeout=settings.model_timeout) for p in builtin_providers()]
    return [*builtin, *configured]  # a table replaces the built-in provider of its name


def build_coordinator(settings: Settings) -> Coordinator | None:
    """The cross-process coordinator for ``settings`` (None: in-process locks only);
    :mod:`agenthost.coordination` says which deployment gets which."""
    from agenthost.coordination import build_coordinator as choose

    return choose(settings.store, settings.coordination, settings.workers)


def build_host(
    settings: Settings, *, observer: TurnObserver | None = None, sweeper: bool = True
) -> Host:
    """The Host ``settings`` describe. ``sweeper=False`` for short-lived processes (the CLI)."""
    retry = RetryPolicy(retries=settings.model_retries, budget=settings.model_retry_budget)
    return Host(
        build_agents(settings),
        providers=build_providers(settings),
        retry=retry,
        store=settings.store,
        policy=settings.policy,
        max_live_sessions=settings.max_live_sessions,
        session_ttl=settings.session_ttl,
        cleanup_interval=settings.cleanup_interval if sweeper else None,
        session_retention=settings.session_retention,
        turn_timeout=settings.turn_timeout,
        models=settings.models,
        coordinator=build_coordinator(settings),
        observer=observer,
        runs=RunOptions(
            idempotency_ttl=settings.idempotency_ttl,
            events_retention=settings.run_events_retention,
            poll_interval=settings.run_poll_interval,
        ),
        **guardrails(settings),
    )


def guardrails(settings: Settings) -> dict[str, Any]:
    """The Host's ``quotas``, ``usage`` and ``tracing`` as ``settings`` ask: each built
    only when asked for (with ``otel = false`` nothing of OpenTelemetry is imported)."""
    from agenthost.quotas.config import build_quotas
    from agenthost.usage import UsageMeter, open_ledger

    tracing = None
    if settings.otel:
        from agenthost.tracing import Tracing, configure_provider

        configure_provider()
        tracing = Tracing(capture_content=settings.otel_content)
    usage = None
    if settings.usage:
        usage = UsageMeter(
            open_ledger(settings.store), flush_interval=settings.usage_flush_interval
        )
    quotas = build_quotas(
        settings.quotas,
        store_url=settings.store,
        coordination_url=settings.coordination,
        workers=settings.workers,
        session_ttl=settings.session_ttl,
    )
    return {"quotas": quotas, "usage": usage, "tracing": tracing}


def _checks(host: Host) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    async def store() -> None:
        await host.start()
        await host.store.ping()

    checks: list[tuple[str, Callable[[], Awaitable[None]]]] = [("store", store)]
    ping = getattr(host.coordinator, "ping", None)  # Redis/PostgreSQL locks
    if ping is not None:
        checks.append(("lock service", ping))
    return checks


async def preflight(settings: Settings) -> None:
    """Build the Host, open what it needs and close it again, so that a store or lock
    service that is down is one clear line at start (naming its URL, password masked,
    and the setting to change) rather than a traceback from inside the server."""
    host = build_host(settings, sweeper=False)
    where = {
        "store": (settings.store, "--store (AGENTHOST_STORE)"),
        "lock service": (
            (settings.coordination, "--coordination (AGENTHOST_COORDINATION)")
            if settings.coordination
            else (settings.store, "--store (AGENTHOST_STORE)")
        ),
    }
    try:
        for name, check in _checks(host):
            try:
                await check()
            except Exception as exc:
                url, setting = where[name]
                advice = (
                    "check that its directory exists and is writable"
                    if url.startswith("sqlite:")
                    else "check that it is running and reachable"
                )
                raise StoreUnavailable(
                    f"cannot open the {name} at {redact(url)}: {_cause(exc).rstrip('.')}; "
                    f"{advice}, or change {setting}"
                ) from exc
    finally:
        await host.close()


def _cause(exc: BaseException) -> str:
    if isinstance(exc, AgentHostError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = [
    "build_agent",
    "build_agents",
    "build_coordinator",
    "build_host",
    "build_providers",
    "load_agent",
    "preflight",
]
