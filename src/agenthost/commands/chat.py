"""``agenthost chat``: talk to the agent as one user, in-process or against a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
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
HISTORY_ENV = "AGENTHOST_CHAT_HISTORY"
"""The interactive history file (default ``~/.agenthost_history``; empty: none)."""
HISTORY_LINES = 1000


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--session", default=None, help='session id (default "default")')
    parser.add_argument("message", nargs="?", help="the message; omit for interactive mode")


def run(args: argparse.Namespace) -> int:
    """0 when every turn completed; 1 when one failed (the model or store was down) or the
    server could not be reached: a script can tell."""
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
    with _line_editing():
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


@contextlib.contextmanager
def _line_editing() -> Iterator[None]:
    """Arrow keys, line editing and history for the prompt (readline, where Python has
    it), kept across runs in ``~/.agenthost_history`` (``$AGENTHOST_CHAT_HISTORY``)."""
    try:
        import readline
    except ImportError:  # a Python built without it: plain input()
        yield
        return
    path = os.environ.get(HISTORY_ENV, "~/.agenthost_history")
    history = Path(path).expanduser() if path else None
    if history is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    readline.set_history_length(HISTORY_LINES)
    try:
        yield
    finally:
        if history is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)


def _failed(event: dict[str, Any]) -> bool:
    return event["type"] == "error" or (
        event["type"] == "done" and event.get("status") in ("failed", "interrupted")
    )


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
        status = event.get("status", "completed")
        if status not in ("completed", "awaiting_approval"):
            print(f"\n[{status}: {event.get('error') or 'the turn did not finish'}]", end="")
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

        failed = False
        for line in _lines(args):
            done = None
            events = client.stream(
                line, session_id=session, agent=agent_name(args), on_reconnect=_reconnecting
            )
            for event in events:
                done = _show(event) or done
                failed = failed or _failed(event)
            if args.message is None:
                _ask_approvals(done, answer)
    return 1 if failed else 0


def _reconnecting(run_id: str) -> None:
    print(f"\n[connection lost: following run {run_id} again]", file=sys.stderr, flush=True)


def _local(args: argparse.Namespace) -> int:
    host = make_host(args)
    key = SessionKey.of(**ids(args), session_id=args.session or DEFAULT_ID)
    with asyncio.Runner() as runner:
        runner.run(host.start())

        def answer(call_id: str, approve: bool) -> None:
            runner.run(_approve(host, key, call_id, approve))

        failed = False
        try:
            for line in _lines(args):
                done, turn_failed = runner.run(_turn(host, key, line, agent_name(args)))
                failed = failed or turn_failed
                if args.message is None:
                    _ask_approvals(done, answer)
        finally:
            runner.run(host.close())
    return 1 if failed else 0


async def _turn(
    host: Host, key: SessionKey, text: str, agent: str | None
) -> tuple[dict[str, Any] | None, bool]:
    done = None
    failed = False
    events = host.stream(
        text,
        tenant_id=key.tenant_id,
        user_id=key.user_id,
        session_id=key.session_id,
        agent=agent,
    )
    async for event in events:
        data = event.to_dict()
        done = _show(data) or done
        failed = failed or _failed(data)
    return done, failed


async def _approve(host: Host, key: SessionKey, call_id: str, approve: bool) -> None:
    events = host.approve_stream(
        call_id, approve, tenant_id=key.tenant_id, user_id=key.user_id, session_id=key.session_id
    )
    async for event in events:
        _show(event.to_dict())
