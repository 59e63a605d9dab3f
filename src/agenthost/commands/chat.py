"""``agenthost chat``: talk to the agent as one user, in-process or against a server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Iterable
from typing import Any

from agenthost.commands._shared import (
    add_target_arguments,
    agent_name,
    ids,
    make_client,
    make_host,
)
from agenthost.errors import AgentHostError
from agenthost.host import Host
from agenthost.keys import DEFAULT_ID, SessionKey

HELP = "Chat as a user: one message, or an interactive session when no message is given."

PROMPT = "you> "


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--session", default=None, help='session id (default "default")')
    parser.add_argument("message", nargs="?", help="the message; omit for interactive mode")


def run(args: argparse.Namespace) -> int:
    try:
        if args.url:
            return _remote(args)
        return _local(args)
    except AgentHostError as exc:
        print(f"agenthost chat: {exc.message}", file=sys.stderr)
        return 1


def _lines(args: argparse.Namespace) -> Iterable[str]:
    if args.message is not None:
        yield args.message
        return
    print(f"Chatting as {args.user!r} in session {args.session or 'default'!r}. Ctrl-D quits.")
    while True:
        try:
            line = input(PROMPT)
        except EOFError:
            print()
            return
        if line.strip() in ("/quit", "/exit"):
            return
        if line.strip():
            yield line


def _show(event: dict[str, Any]) -> dict[str, Any] | None:
    """Print one turn event; return the final ``done`` payload."""
    kind = event["type"]
    if kind == "delta":
        print(event["text"], end="", flush=True)
    elif kind == "tool_call":
        print(f"[tool {event['name']}({event['arguments']})]", flush=True)
    elif kind == "tool_result":
        print(f"[{event['name']} -> {event['content']}]", flush=True)
    elif kind == "handoff":
        print(f"[handed off from {event['from']} to {event['to']}]", flush=True)
    elif kind == "approval_required":
        print(f"[{event['name']}({event['arguments']}) needs approval: call {event['id']}]")
    elif kind == "error":
        print(f"\n[error {event['code']}: {event['message']}]", flush=True)
    elif kind == "done":
        print()
        return event
    return None


def _ask_approvals(done: dict[str, Any] | None, answer: Callable[[str, bool], None]) -> None:
    """Interactive mode: ask about each tool call waiting for approval."""
    for call in (done or {}).get("approvals", []):
        reply = input(f"run {call['name']}({call['arguments']})? [y/N] ").strip().lower()
        answer(call["id"], reply in ("y", "yes"))


def _remote(args: argparse.Namespace) -> int:
    session = args.session or DEFAULT_ID
    with make_client(args) as client:

        def answer(call_id: str, approve: bool) -> None:
            print(client.approve(session, call_id, approve)["reply"])

        for line in _lines(args):
            done = None
            for event in client.stream(line, session_id=session, agent=agent_name(args)):
                done = _show(event) or done
            if args.message is None:
                _ask_approvals(done, answer)
    return 0


def _local(args: argparse.Namespace) -> int:
    host = make_host(args)
    key = SessionKey.of(**ids(args), session_id=args.session or DEFAULT_ID)
    with asyncio.Runner() as runner:
        runner.run(host.start())

        def answer(call_id: str, approve: bool) -> None:
            runner.run(_approve(host, key, call_id, approve))

        try:
            for line in _lines(args):
                done = runner.run(_turn(host, key, line, agent_name(args)))
                if args.message is None:
                    _ask_approvals(done, answer)
        finally:
            runner.run(host.close())
    return 0


async def _turn(host: Host, key: SessionKey, text: str, agent: str | None) -> dict[str, Any] | None:
    done = None
    events = host.stream(
        text,
        tenant_id=key.tenant_id,
        user_id=key.user_id,
        session_id=key.session_id,
        agent=agent,
    )
    async for event in events:
        done = _show(event.to_dict()) or done
    return done


async def _approve(host: Host, key: SessionKey, call_id: str, approve: bool) -> None:
    events = host.approve_stream(
        call_id, approve, tenant_id=key.tenant_id, user_id=key.user_id, session_id=key.session_id
    )
    async for event in events:
        _show(event.to_dict())
