"""``agenthost serve``: run the HTTP server (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from agenthost.errors import ConfigError, MissingExtra
from agenthost.extras import require

if TYPE_CHECKING:
    from agenthost.settings import Settings

HELP = "Run the HTTP server (settings: flags > AGENTHOST_* env > agenthost.toml)."

log = logging.getLogger("agenthost.server")

# flag -> settings field; flags left out keep the env/TOML/default value.
_FIELDS = (
    "host",
    "port",
    "workers",
    "store",
    "model",
    "models",
    "agent",
    "agents",
    "default_agent",
    "fallback_models",
    "model_retries",
    "model_retry_budget",
    "auth",
    "policy",
    "max_live_sessions",
    "session_ttl",
    "cleanup_interval",
    "session_retention",
    "turn_timeout",
    "max_body_bytes",
    "history_window",
    "coordination",
    "jwt_public_key",
    "jwt_tenant_claim",
    "jwt_audience",
    "log_level",
    "cors_origins",
    "cors_max_age",
    "root_path",
    "forwarded_allow_ips",
)


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", help="interface to bind (default 127.0.0.1)")
    add("--port", type=int, help="port (default 8000)")
    add("--workers", type=int, help="worker processes (default 1)")
    add("--store", help="store URL: sqlite:///agenthost.db, memory://, postgresql://, redis://")
    add("--model", help="default model: offline, offline:200ms, openai:<name>, <provider>:<name>")
    add("--models", help="comma-separated extra models sessions may choose")
    add("--agent", help="import path 'module:attribute' of an agenthost.Agent to serve")
    add(
        "--agents",
        help="import path 'module:attribute' of several Agents (a list, a dict by name, or a "
        "function returning one); or [agents.<name>] tables in the TOML file",
    )
    add("--default-agent", help="the agent of routes that name none (default: the first)")
    add("--fallback-models", help="comma-separated models tried when the model fails")
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
    add("--coordination", help="redis:// URL for cross-process session locks")
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
    values = {
        name: getattr(args, name, None)
        for name in (*_FIELDS, "insecure_bind", "log_content", "cors_allow_credentials")
    }
    return {k: v for k, v in values.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    try:
        require("server", "the HTTP server")
    except MissingExtra as exc:
        print(f"agenthost serve: {exc.message}", file=sys.stderr)
        return 2
    from agenthost.server.logs import configure_logging
    from agenthost.settings import SETTINGS_ENV, Settings

    try:
        settings = Settings.load(overrides(args), config_file=args.config)
        settings.check()
    except ConfigError as exc:
        print(f"agenthost serve: {exc.message}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    log.info("settings", extra={"fields": {"settings": settings.masked()}})
    try:
        if settings.workers > 1:
            os.environ[SETTINGS_ENV] = json.dumps(settings.revealed())
            _run_uvicorn("agenthost.server.app:app_from_environment", settings, factory=True)
        else:
            from agenthost.server.app import create_app, freeze_startup_heap

            app = create_app(settings)
            freeze_startup_heap()
            _run_uvicorn(app, settings, factory=False)
    except ConfigError as exc:
        print(f"agenthost serve: {exc.message}", file=sys.stderr)
        return 2
    return 0


def _run_uvicorn(app: Any, settings: Settings, *, factory: bool) -> None:
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
