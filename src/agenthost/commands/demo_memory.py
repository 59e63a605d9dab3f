"""``agenthost demo --memory``: a long session and a new one both still know the user.

Alice says her name, then 100 more turns of small talk follow (200 messages, with a
history window of 20): the session's summary still has her name. A brand-new
session of hers gets it from long-term memory; Bob, and a user also called alice
in another tenant, get nothing. In-process on the offline model by default, or
against a server (``--serve`` starts one with ``--memory extract --compaction``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

from tqdm import tqdm

SMALL_TALK = 100
WINDOW = 20
NAME = "Alice"
SERVE_FLAGS = ("--memory", "extract", "--compaction", "--history-window", str(WINDOW))


@dataclass
class Check:
    who: str
    how: str
    reply: str
    expect_name: bool

    @property
    def ok(self) -> bool:
        return (NAME in self.reply) == self.expect_name


def in_process() -> list[Check]:
    from agenthost import Agent, Compaction, Host, LongTermMemory

    agent = Agent(
        name="demo",
        model="offline",
        history_window=WINDOW,
        long_term_memory=LongTermMemory(extract=True),
        compaction=Compaction(),
    )

    async def main() -> list[Check]:
        async with Host(agent, store="memory://") as host:

            async def run(tenant: str, user: str, session: str, message: str) -> str:
                result = await host.run(message, tenant_id=tenant, user_id=user, session_id=session)
                return result.reply

            checks: list[Check] = []
            await run("acme", "alice", "long", f"My name is {NAME}")
            for i in tqdm(range(SMALL_TALK), desc="small talk", unit="turn", file=sys.stderr):
                await run("acme", "alice", "long", f"Tell me something about topic number {i}")
            await host.upkeep.drain()
            question = "What is my name?"
            for who, how, tenant, user, session, expect in SCRIPT:
                checks.append(Check(who, how, await run(tenant, user, session, question), expect))
            return checks

    return asyncio.run(main())


SCRIPT = (
    ("alice, the long session", "its summary (and memory)", "acme", "alice", "long", True),
    ("alice, a new session", "long-term memory alone", "acme", "alice", "fresh", True),
    ("bob, same tenant", "nothing to go on", "acme", "bob", "fresh", False),
    ("alice, another tenant", "nothing to go on", "other", "alice", "fresh", False),
)


def remote(url: str, api_key: str | None) -> list[Check]:
    from agenthost.client import Client
    from agenthost.errors import AgentHostError

    def client(tenant: str, user: str) -> Client:
        return Client(url, user_id=user, tenant_id=tenant, api_key=api_key)

    def run(tenant: str, user: str, session: str, message: str) -> str:
        with client(tenant, user) as c:
            reply: str = c.chat(message, session_id=session)["reply"]
            return reply

    run("acme", "alice", "long", f"My name is {NAME}")
    for i in tqdm(range(SMALL_TALK), desc="small talk", unit="turn", file=sys.stderr):
        run("acme", "alice", "long", f"Tell me something about topic number {i}")
    deadline = time.monotonic() + 30  # summaries and memories are made after the replies
    with client("acme", "alice") as c:
        while not (c.memories() and c.session("long").get("summary")):
            if time.monotonic() > deadline:
                raise AgentHostError(
                    "no summary or memory after 30 s: does the server run with "
                    "--memory extract --compaction?"
                )
            time.sleep(0.1)
    return [
        Check(who, how, run(tenant, user, session, "What is my name?"), expect)
        for who, how, tenant, user, session, expect in SCRIPT
    ]


def report(checks: list[Check]) -> int:
    print(
        f"\nAlice said her name, then {2 * SMALL_TALK} messages followed "
        f"(history window {WINDOW}).\n"
    )
    for check in checks:
        mark = "ok " if check.ok else "FAIL"
        print(f"[{mark}] {check.who:<24} {check.reply:<32} ({check.how})")
    if all(c.ok for c in checks):
        print("\nThe long session kept the name in its summary, the new one got it from memory,")
        print("and nobody else got anything: memory is per user, per tenant.")
        return 0
    print("\nMemory check FAILED.", file=sys.stderr)
    return 1
