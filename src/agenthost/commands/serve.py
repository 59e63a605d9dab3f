"""``agenthost serve``: run the HTTP server (FastAPI on uvicorn).

Before uvicorn starts, the settings are checked, the port is tried and the store
(and the lock service, if any) is opened once: whatever stops the server from
starting is one line on stderr naming the problem and the setting to change
(exit status 2 for settings, 1 for a service that is down), with the traceback
only under ``--log-level debug``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import traceback
from typing import Any

from agenthost.errors import AgentHostError, ConfigError, MissingExtra
from agenthost.extras import require
from agenthost.settings import CLI_FLAGS

HELP = "Run the HTTP server (settings: flags > AGENTHOST_* env > agenthost.toml)."

log = logging.getLogger("agenthost.server")


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", help="interface to bind (default 127.0.0.1)")
    add("--port", type=int, help="port (default 8000)")
    add("--workers", type=int, help="worker processes (default 1)")
    add("--store", help="store URL: sqlite:///agenthost.db, memory://, postgresql://, redis://")
    add("--model", help="default model: offline, offline:200ms, openai:<name>, <provider>:<name>")
    add("--models", help="comma-separated extra models sessions may choose")
    add("--agent", help="'module:attribute' of an Agent to serve (found in the current directory)")
    add(
        "--agents",
        help="import path 'module:attribute' of several Agents (a list, a dict by name, or a "
        "function returning one); or [agents.<name>] tables in the TOML file",
    )
    add("--default-agent", help="the agent of routes that name none (default: the first)")
    add("--fallback-models", help="comma-separated models tried when the model fails")
    add("--model-timeout", type=float, help="seconds a provider may take per attempt (default 30)")
    add("--model-retries", type=int, help="retries of a failing model call (default 2)")
    add(
        "--model-retry-budget",
        type=float,
        help="seconds one model may take, retries included, before the next (default 30)",
    )
    add("--config", metavar="FILE", help="TOML settings file (default ./agenthost.toml if present)")
    add("--auth", choices=("none", "api-keys", "jwt"), help="authentication mode (default none)")
    add("--policy", choices=("queue", "reject"), help="a second turn on a busy session waits/fails")
    add("--max-live-sessions", type=int, help="sessions kept in memory (LRU)")
    add("--session-ttl", type=float, help="seconds an idle session stays in memory")
    add("--cleanup-interval", type=float, help="seconds between sweeps")
    add("--session-retention", type=float, help="delete sessions idle longer than this (seconds)")
    add("--turn-timeout", type=float, help="seconds a turn may take (default 300)")
    add("--max-body-bytes", type=int, help="largest accepted request body (default 1 MiB)")
    add("--history-window", type=int, help="messages of history the model sees")
    add(
        "--memory",
        choices=("off", "on", "extract"),
        help="built-in agent: long-term memory per user (extract: facts from each turn too)",
    )
    add(
        "--compaction",
        action="store_true",
        default=None,
        help="built-in agent: summarise what falls out of a long session's window",
    )
    add("--coordination", help="redis:// URL for cross-process session locks")
    add(
        "--on-disconnect",
        choices=("interrupt", "continue"),
        help="a streaming client goes away: interrupt its turn (default), or let it run on "
        "to be followed at /v1/runs/{id}/events",
    )
    add("--idempotency-ttl", type=float, help="seconds an Idempotency-Key is remembered (1 day)")
    add("--run-events-retention", type=float, help="seconds a run's events are kept (1 hour)")
    add("--run-poll-interval", type=float, help="seconds between reads of a followed run (0.2)")
    add("--jwt-public-key", help="RS256 public key file (or set AGENTHOST_JWT_PUBLIC_KEY)")
    add("--jwt-tenant-claim", help="JWT claim holding the tenant (default 'tenant')")
    add("--jwt-audience", help="required JWT audience")
    add("--log-level", choices=("debug", "info", "warning", "error"))
    add("--cors-origins", help="comma-separated origins whose web pages may call the API")
    add("--cors-max-age", type=int, help="seconds browsers may cache a preflight (default 600)")
    add(
        "--cors-allow-credentials",
        action="store_true",
        default=None,
        help="let browsers send cookies to the API (needs exact --cors-origins)",
    )
    add("--root-path", help="path prefix the reverse proxy serves the app under, e.g. /agents")
    add(
        "--forwarded-allow-ips",
        help="comma-separated proxy addresses (or networks) trusted for X-Forwarded-For/-Proto",
    )
    add(
        "--insecure-bind",
        action="store_true",
        default=None,
        help="allow --auth none on a non-loopback interface",
    )
    add(
        "--log-content",
        action="store_true",
        default=None,
        help="log message text at debug level (off by default)",
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (*CLI_FLAGS, "insecure_bind", "log_content", "cors_allow_credentials")
    values = {name: getattr(args, name, None) for name in names}
    return {k: v for k, v in values.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    try:
        require("server", "the HTTP server")
    except MissingExtra as exc:
        print(f"agenthost serve: {exc.message}", file=sys.stderr)
        return 2
    from agenthost.server.logs import configure_logging
    from agenthost.settings import Settings

    try:
        settings = Settings.load(overrides(args), config_file=args.config)
        settings.check()
    except ConfigError as exc:
        return _failed(exc, debug=False)
    debug = settings.log_level == "debug"
    configure_logging(settings.log_level)
    try:
        _check_port(settings.host, settings.port)
        from agenthost.bootstrap import preflight

        asyncio.run(preflight(settings))
    except Exception as exc:
        return _failed(exc, debug=debug)
    log.info("settings", extra={"fields": {"settings": settings.masked()}})
    print(_open_hint(settings.host, settings.port), flush=True)
    try:
        _serve(settings)
    except Exception as exc:
        return _failed(exc, debug=debug)
    return 0


def _serve(settings: Any) -> None:
    from agenthost.settings import SETTINGS_ENV

    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = json.dumps(settings.revealed())
        _run_uvicorn("agenthost.server.app:app_from_environment", settings, factory=True)
    else:
        from agenthost.server.app import create_app, freeze_startup_heap

        app = create_app(settings)
        freeze_startup_heap()
        _run_uvicorn(app, settings, factory=False)


def _failed(exc: BaseException, *, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, AgentHostError):
        print(f"agenthost serve: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    hint = "" if debug else " (--log-level debug shows the traceback)"
    print(f"agenthost serve: cannot start: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
    return 1


def _check_port(host: str, port: int) -> None:
    """A port another process holds is a clear error now, not a log line from uvicorn."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: unknown host ({exc.strerror}); "
            "change --host (AGENTHOST_HOST)"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise ConfigError(
                f"cannot listen on {host}:{port}: {reason}; choose another --port "
                "(AGENTHOST_PORT) or stop what is using it"
            ) from None


def _open_hint(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    return f"agenthost: open {base}/ for the chat page, {base}/docs for the API (Ctrl-C stops)"


def _run_uvicorn(app: Any, settings: Any, *, factory: bool) -> None:
    import uvicorn

    from agenthost.server.proxy import uvicorn_proxy_options

    uvicorn.run(
        app,
        factory=factory,
        host=settings.host,
        port=settings.port,
        workers=settings.workers if factory else None,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        **uvicorn_proxy_options(settings),
    )
