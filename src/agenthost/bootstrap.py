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

import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from agenthost.agent import Agent
from agenthost.errors import AgentHostError, ConfigError, StoreUnavailable
from agenthost.host import Host
from agenthost.locks import Coordinator
from agenthost.models import Model, ProviderOptions, resolve_model
from agenthost.settings import Settings
from agenthost.turn import TurnObserver
from agenthost.urls import redact


def load_agent(path: str) -> Agent:
    """Import ``module:attribute``; the attribute is an Agent or a function returning one.

    Like uvicorn, the current directory is importable: ``--agent myagent:agent`` finds
    ``./myagent.py`` without ``PYTHONPATH=.``.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"agent {path!r} must look like 'package.module:attribute'")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import agent {path!r}: {exc}") from None
    except AgentHostError:
        raise
    except Exception as exc:  # the module itself failed: a SyntaxError, a NameError, ...
        raise ConfigError(f"importing agent {path!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(target, Agent) and callable(target):
        target = target()
    if not isinstance(target, Agent):
        raise ConfigError(f"{path!r} is a {type(target).__name__}, not an agenthost.Agent")
    return target


def build_agent(settings: Settings) -> Agent:
    """``settings.agent`` imported, else the built-in agent the settings describe."""
    if settings.agent:
        return load_agent(settings.agent)
    return Agent(
        name=settings.agent_name,
        model=settings.model,
        instructions=settings.instructions,
        history_window=settings.history_window,
    )


def provider_options(settings: Settings, model: str) -> ProviderOptions:
    """Timeout and retries for a model name: ``model_options["openai:gpt-4o"]``, else
    ``model_options["openai"]``, else ``model_timeout`` / ``model_retries``."""
    timeout, retries = settings.model_timeout, settings.model_retries
    provider = model.partition(":")[0]
    for name in (provider, model):  # the more specific one wins
        override = settings.model_options.get(name)
        if override is not None:
            timeout = override.timeout if override.timeout is not None else timeout
            retries = override.retries if override.retries is not None else retries
    return ProviderOptions(timeout=timeout, retries=retries)


def model_resolver(settings: Settings) -> Callable[[Model | str], Model]:
    """Model names resolved with the settings' timeouts (a model object is used as is)."""

    def resolve(spec: Model | str) -> Model:
        if not isinstance(spec, str):
            return spec
        return resolve_model(spec, provider_options(settings, spec))

    return resolve


def build_coordinator(settings: Settings) -> Coordinator | None:
    """The cross-process coordinator for ``settings`` (None: in-process locks only);
    :mod:`agenthost.coordination` says which deployment gets which."""
    from agenthost.coordination import build_coordinator as choose

    return choose(settings.store, settings.coordination, settings.workers)


def build_host(
    settings: Settings, *, observer: TurnObserver | None = None, sweeper: bool = True
) -> Host:
    """The Host ``settings`` describe. ``sweeper=False`` for short-lived processes (the CLI)."""
    return Host(
        build_agent(settings),
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
        resolve_model=model_resolver(settings),
    )


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
    "build_coordinator",
    "build_host",
    "load_agent",
    "model_resolver",
    "preflight",
    "provider_options",
]
