"""What ``chat`` and ``sessions`` share: where to run (a server URL or an in-process Host)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, TypedDict

from agenthost.host import Host
from agenthost.keys import DEFAULT_ID

if TYPE_CHECKING:
    from agenthost.client import Client


def add_target_arguments(parser: argparse.ArgumentParser, *, user_required: bool = True) -> None:
    add = parser.add_argument
    add("--user", required=user_required, help="the user to act as (user_id)")
    add("--tenant", default=None, help='the tenant (default "default")')
    add("--url", help="a running server, e.g. http://127.0.0.1:8000 (default: in-process)")
    add("--api-key", help="API key or JWT for --url (default $AGENTHOST_API_KEY)")
    add("--store", help="in-process: store URL (default from settings: sqlite:///agenthost.db)")
    add("--model", help="in-process: model name (default from settings)")
    add(
        "--agent",
        help="the agent to talk to, by name (default: the session's own, else the default "
        "agent); in-process, 'module:attribute' still loads an Agent",
    )
    add("--agents", help="in-process: 'module:attribute' of the agents (a list, dict or factory)")
    add("--config", metavar="FILE", help="in-process: TOML settings file")


def make_client(args: argparse.Namespace) -> Client:
    from agenthost.client import Client  # needs httpx: the "client" extra

    return Client(
        args.url,
        user_id=args.user,
        tenant_id=args.tenant,
        api_key=args.api_key or os.environ.get("AGENTHOST_API_KEY"),
    )


def make_host(args: argparse.Namespace) -> Host:
    """An in-process Host on the configured store (flags > env > TOML, like ``serve``)."""
    from agenthost.bootstrap import build_host
    from agenthost.settings import Settings

    overrides: dict[str, Any] = {
        "store": args.store,
        "model": args.model,
        "agent": args.agent if is_import_path(args.agent) else None,
        "agents": args.agents,
    }
    settings = Settings.load(overrides, config_file=args.config)
    return build_host(settings, sweeper=False)  # a CLI process is short-lived


def is_import_path(value: str | None) -> bool:
    return value is not None and ":" in value


def agent_name(args: argparse.Namespace) -> str | None:
    """The agent named with ``--agent`` (None: an import path, or not given)."""
    value: str | None = args.agent
    return None if value is None or is_import_path(value) else value


class Ids(TypedDict):
    tenant_id: str
    user_id: str


def ids(args: argparse.Namespace) -> Ids:
    return {"tenant_id": args.tenant or DEFAULT_ID, "user_id": args.user or DEFAULT_ID}
