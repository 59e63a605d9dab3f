"""``agenthost demo``: the seeds' scenario. Alice and Bob each say their name and ask it back.

Their turns interleave, and each conversation remembers only its own user:
isolation you can see. In between, a triage agent hands Alice to billing and
Bob to support (``/handoff <agent>``, which the offline model turns into a
transfer), and each new agent still knows who it is talking to. Runs
in-process on the offline model by default (no network, no files), against a
running server with ``--url`` (the hand-offs when it serves these agents:
``--agents agenthost.commands.demo:demo_agents``), or against a server it
starts itself with ``--serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from agenthost.agent import Agent
from agenthost.errors import AgentHostError
from agenthost.extras import require

HELP = (
    "Run the Alice/Bob demo (isolation, and a triage agent handing each to another agent) "
    "and print both conversations side by side."
)

HANDOFFS = (("alice", "/handoff billing"), ("bob", "/handoff support"))
SCRIPT = (
    ("alice", "My name is Alice"),
    ("bob", "My name is Bob"),
    *HANDOFFS,
    ("alice", "What is my name?"),
    ("bob", "What is my name?"),
)
EXPECTED = {"alice": "Alice", "bob": "Bob"}
EXPECTED_AGENT = {"alice": "billing", "bob": "support"}

Line = tuple[str, str, str, str]
"""(user, message, agent, reply)"""
Say = Callable[[str, str, str], tuple[str, str]]
"""(user, session, message) -> (agent, reply)"""


def demo_agents() -> list[Agent]:
    """The demo's team: triage hands users to support or billing (offline model)."""
    return [
        Agent(
            name="triage",
            model="offline",
            description="Greets users and hands them to the right agent.",
            instructions="Find out what the user needs; hand them to support or billing.",
            handoffs=("support", "billing"),
        ),
        Agent(
            name="support",
            model="offline",
            description="Technical help with the product.",
            handoffs=("triage",),
        ),
        Agent(
            name="billing",
            model="offline",
            description="Invoices, payments and refunds.",
            handoffs=("triage",),
        ),
    ]


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="run against this server instead of in-process")
    where.add_argument("--serve", action="store_true", help="start a server and run against it")
    parser.add_argument("--api-key", help="service key for --url (default $AGENTHOST_API_KEY)")
    parser.add_argument("--tenant", help="tenant for --url")


def run(args: argparse.Namespace) -> int:
    session = "demo-" + os.urandom(3).hex()
    try:
        if args.serve:
            require("server", "the HTTP server (--serve)")
            with _server() as url:
                transcript = _play(_remote(url, None, None), session, handoffs=True)
        elif args.url:
            api_key = args.api_key or os.environ.get("AGENTHOST_API_KEY")
            handoffs = _serves_the_team(args.url, api_key, args.tenant)
            if not handoffs:
                print("(the server does not run the demo's agents: no hand-offs)", file=sys.stderr)
            transcript = _play(_remote(args.url, api_key, args.tenant), session, handoffs=handoffs)
        else:
            transcript = asyncio.run(_in_process(session))
    except AgentHostError as exc:
        print(f"agenthost demo: {exc.message}", file=sys.stderr)
        return 1
    _print_side_by_side(transcript)
    return _verdict(transcript)


def _play(say: Say, session: str, *, handoffs: bool) -> list[Line]:
    script = [line for line in SCRIPT if handoffs or line not in HANDOFFS]
    transcript = []
    for user, message in tqdm(script, desc="demo turns", unit="turn", file=sys.stderr):
        transcript.append((user, message, *say(user, session, message)))
    return transcript


async def _in_process(session: str) -> list[Line]:
    from agenthost import Host

    async with Host(demo_agents(), store="memory://") as host:
        transcript = []
        for user, message in tqdm(SCRIPT, desc="demo turns", unit="turn", file=sys.stderr):
            result = await host.run(message, user_id=user, session_id=session)
            transcript.append((user, message, result.agent or "agent", result.reply))
        return transcript


def _serves_the_team(url: str, api_key: str | None, tenant: str | None) -> bool:
    from agenthost.client import Client

    with Client(url, api_key=api_key, tenant_id=tenant) as client:
        agents = {a["name"]: a for a in client.agents()}
    triage = agents.get("triage", {})
    return {"support", "billing"} <= set(triage.get("handoffs", ()))


def _remote(url: str, api_key: str | None, tenant: str | None) -> Say:
    from agenthost.client import Client

    def say(user: str, session: str, message: str) -> tuple[str, str]:
        with Client(url, user_id=user, tenant_id=tenant, api_key=api_key) as client:
            result = client.chat(message, session_id=session)
            return str(result.get("agent") or "agent"), str(result["reply"])

    return say


@contextmanager
def _server() -> Iterator[str]:
    """``agenthost serve`` on a free loopback port with a memory store, for the demo."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "agenthost.cli", "serve", "--port", str(port)]
    command += ["--store", "memory://", "--model", "offline", "--auth", "none"]
    command += ["--agents", "agenthost.commands.demo:demo_agents"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    with tqdm(desc="starting server", file=sys.stderr, bar_format="{desc} {elapsed}") as bar:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AgentHostError(f"the server exited with status {process.returncode}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            bar.update()
            time.sleep(0.1)
    raise AgentHostError("the server did not become ready in 30 s")


def _print_side_by_side(transcript: list[Line]) -> None:
    width = max(30, min(60, (shutil.get_terminal_size().columns - 3) // 2))
    columns = {"alice": 0, "bob": 1}
    print(f"{'Alice':<{width}} | Bob")
    print(f"{'-' * width}-+-{'-' * width}")
    for user, message, agent, reply in transcript:
        lines = textwrap.wrap(f"you: {message}", width) + textwrap.wrap(f"{agent}: {reply}", width)
        for line in lines:
            cells = ["", ""]
            cells[columns[user]] = line
            print(f"{cells[0]:<{width}} | {cells[1]}".rstrip())


def _verdict(transcript: list[Line]) -> int:
    last = {user: reply for user, _, _, reply in transcript}
    ok = all(EXPECTED[user] in reply for user, reply in last.items())
    others = all(
        EXPECTED[other] not in last[user] for user in last for other in last if other != user
    )
    if not (ok and others):
        print("\nIsolation check FAILED: a reply did not match its own user.", file=sys.stderr)
        return 1
    print("\nEach user got their own name back: the sessions are isolated.")
    if not any(message in dict(HANDOFFS).values() for _, message, _, _ in transcript):
        return 0
    agents = {user: agent for user, _, agent, _ in transcript}
    if agents != EXPECTED_AGENT:
        print(f"\nHand-off check FAILED: the last replies came from {agents}.", file=sys.stderr)
        return 1
    print(
        "Triage handed Alice to billing and Bob to support; each new agent still knew "
        "their name: the history moved with them."
    )
    return 0
