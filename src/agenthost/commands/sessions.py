"""``agenthost sessions list|show|delete``: a user's sessions, in-process or on a server."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from agenthost.agents import client_config, entry_name
from agenthost.commands._shared import (
    add_target_arguments,
    agent_name,
    ids,
    make_client,
    make_host,
)
from agenthost.errors import AgentHostError, NotFound
from agenthost.host import Host
from agenthost.stores.base import SessionRecord

HELP = "List, show or delete a user's sessions."


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list sessions, newest first")
    add_target_arguments(listing, user_required=False)
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", help="print a session's messages")
    add_target_arguments(show)
    show.add_argument("session", help="session id")
    show.add_argument("--json", action="store_true", help="print JSON")
    delete = actions.add_parser("delete", help="delete a session and its history")
    add_target_arguments(delete)
    delete.add_argument("session", nargs="+", help="session id(s)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.url:
            return _remote(args)
        return asyncio.run(_local(args))
    except AgentHostError as exc:
        print(f"agenthost sessions: {exc.message}", file=sys.stderr)
        return 1


def _remote(args: argparse.Namespace) -> int:
    if args.user is None:
        print("agenthost sessions: --user is required with --url", file=sys.stderr)
        return 2
    with make_client(args) as client:
        if args.action == "list":
            sessions = _of_agent(client.sessions(limit=args.limit), agent_name(args))
            _print_sessions(sessions, as_json=args.json)
        elif args.action == "show":
            session = client.session(args.session)
            _print_session(session, client.messages(args.session), as_json=args.json)
        else:
            for session_id in _progress(args.session):
                client.delete_session(session_id)
            print(f"deleted {len(args.session)} session(s)")
    return 0


async def _local(args: argparse.Namespace) -> int:
    async with make_host(args) as host:
        who = ids(args)
        if args.action == "list":
            records = await host.sessions(
                tenant_id=who["tenant_id"], user_id=args.user, limit=args.limit
            )
            sessions = [_with_agent(host, r) for r in records]
            _print_sessions(_of_agent(sessions, agent_name(args)), as_json=args.json)
        elif args.action == "show":
            record = await host.get_session(**who, session_id=args.session)
            if record is None:
                raise NotFound(f"session {args.session!r} not found")
            messages = await host.history(**who, session_id=args.session)
            session = _with_agent(host, record)
            _print_session(session, (m.to_dict() for m in messages), as_json=args.json)
        else:
            deleted = 0
            for session_id in _progress(args.session):
                deleted += await host.clear(**who, session_id=session_id)
            print(f"deleted {deleted} session(s)")
    return 0


def _with_agent(host: Host, record: SessionRecord) -> dict[str, Any]:
    """A session as the server shows it: its agent apart from the client's config."""
    out = record.to_dict()
    out["config"] = client_config(record.config)
    out["agent"] = host.agents.active(record.config).name
    out["entry_agent"] = entry_name(record.config)
    return out


def _of_agent(sessions: list[dict[str, Any]], agent: str | None) -> list[dict[str, Any]]:
    """``--agent NAME``: only the sessions talking to that agent now."""
    return sessions if agent is None else [s for s in sessions if s.get("agent") == agent]


def _progress(items: list[str]) -> Iterable[str]:
    return tqdm(items, desc="deleting", unit="session", disable=len(items) < 10, file=sys.stderr)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _print_sessions(sessions: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(sessions, indent=2, ensure_ascii=False))
        return
    if not sessions:
        print("no sessions")
        return
    print(f"{'USER':<20} {'SESSION':<24} {'AGENT':<16} {'MESSAGES':>8}  UPDATED")
    for s in sessions:
        updated = _when(s["updated_at"])
        agent = s.get("agent") or "-"
        print(
            f"{s['user_id']:<20} {s['session_id']:<24} {agent:<16} {s['message_count']:>8}  "
            f"{updated}"
        )


def _print_session(
    session: dict[str, Any], messages: Iterable[dict[str, Any]], *, as_json: bool
) -> None:
    if as_json:
        print(json.dumps({**session, "messages": list(messages)}, indent=2, ensure_ascii=False))
        return
    print(f"session {session['session_id']!r} of {session['user_id']!r}", end="")
    print(f" ({session['message_count']} messages, agent {session.get('agent') or '-'!r})")
    if session["state"]:
        print(f"state: {json.dumps(session['state'], ensure_ascii=False)}")
    for m in messages:
        text = m["content"]
        if m.get("tool_calls"):
            text += " " + ", ".join(f"[{c['name']}({c['arguments']})]" for c in m["tool_calls"])
        meta = m.get("meta") or {}
        status = meta.get("status")
        suffix = f"  ({status})" if status else ""
        several = session.get("entry_agent") is not None  # a server with several agents
        speaker = f"[{meta['agent']}] " if several and meta.get("agent") else ""
        print(f"{m['seq']:>4} {m['role']:>9}: {speaker}{text}{suffix}")
