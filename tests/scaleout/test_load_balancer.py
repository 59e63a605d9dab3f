"""Debian's nginx with the shipped config (``deploy/nginx``) in front of two ``agenthost serve``
processes on PostgreSQL + Redis, as in ``compose.yaml``: turns go through it; one process is
killed mid-turn; nginx sends what follows to the other; nothing acknowledged is lost, and
nothing is stored twice (a POST the dead process had received is not sent again)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support.agents import AGENT
from support.nginx import LoadBalancer
from support.processes import ServeProcess
from support.services import drop_redis_prefix, redis_url, unique, with_query

USERS = [f"user{i}" for i in range(4)]
SLOW_USER = "slowpoke"
DEADLINE = 30.0


@dataclass
class Conversation:
    """One user's turns through the load balancer, sent one after another."""

    user: str
    sent: list[tuple[str, int, bool]] = field(default_factory=list)  # text, status, after kill

    def acknowledged(self) -> list[str]:
        return [text for text, status, _ in self.sent if status == 200]


@pytest.fixture
async def coordination() -> AsyncIterator[str]:
    base, prefix = redis_url(), unique("agenthost-lb")
    yield with_query(base, prefix=prefix, lock_ttl="2")  # a dead holder blocks a session 2 s
    await drop_redis_prefix(base, prefix)
    await drop_redis_prefix(base, f"{prefix}-lock")


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # polling a condition, with a deadline
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def holder(processes: list[ServeProcess], user: str) -> ServeProcess:
    """The process whose live sessions show ``user``'s session busy (a turn running there)."""
    async with httpx.AsyncClient(timeout=5) as client:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            for process in processes:
                live = (await client.get(f"{process.url}/v1/admin/sessions")).json()["sessions"]
                if any(s["user_id"] == user and s["busy"] for s in live):
                    return process
            await asyncio.sleep(0.02)
    raise AssertionError(f"no process is running a turn of {user}")


async def test_nginx_routes_around_a_process_killed_mid_turn(
    pg_url: str, coordination: str, tmp_path: Path
) -> None:
    args = ("--store", pg_url, "--coordination", coordination, "--agent", AGENT)
    processes = [ServeProcess(tmp_path, f"app{i}", *args) for i in (1, 2)]
    try:
        await asyncio.gather(*(p.start() for p in processes))
        upstreams = (f"127.0.0.1:{processes[0].port}", f"127.0.0.1:{processes[1].port}")
        with LoadBalancer(tmp_path, upstreams) as nginx:
            await run_through(nginx, processes)
    finally:
        await asyncio.gather(*(p.stop() for p in processes))


async def run_through(nginx: LoadBalancer, processes: list[ServeProcess]) -> None:
    killed = asyncio.Event()
    stop = asyncio.Event()
    conversations = [Conversation(user) for user in USERS]

    async def converse(client: httpx.AsyncClient, talk: Conversation) -> None:
        turn = 0
        while not stop.is_set():
            text, after_kill = f"{talk.user} turn {turn}", killed.is_set()
            body = {"message": text, "user_id": talk.user}
            response = await client.post("/v1/chat", json=body)
            talk.sent.append((text, response.status_code, after_kill))
            if response.status_code == 200:
                assert response.json()["reply"] == f"You said: {text}"
            turn += 1

    async with httpx.AsyncClient(base_url=nginx.url, timeout=DEADLINE) as client:
        slow = asyncio.create_task(
            client.post("/v1/chat", json={"message": "slow, please", "user_id": SLOW_USER})
        )
        victim = await holder(processes, SLOW_USER)  # the slow turn runs there, for a minute
        survivor = next(p for p in processes if p is not victim)
        load = [asyncio.create_task(converse(client, talk)) for talk in conversations]
        await until(lambda: all(len(t.acknowledged()) >= 3 for t in conversations), "load")

        victim.kill()
        assert victim.process is not None
        await victim.process.wait()  # gone, its sockets closed: from now on nginx must cope
        killed.set()

        assert (await slow).status_code == 502  # delivered to the dead process: not resent
        retried = re.compile(
            rf"POST /v1/chat 200 upstream=\[127\.0\.0\.1:{victim.port}, "
            rf"127\.0\.0\.1:{survivor.port}\] \[502, 200\]"
        )
        await until(lambda: any(retried.search(line) for line in nginx.access()), "a retry")
        await until(
            lambda: all(any(after for _, s, after in t.sent if s == 200) for t in conversations),
            "turns of every user after the kill",
        )
        stop.set()
        await asyncio.gather(*load)

        again = await client.post(
            "/v1/chat", json={"message": "still there?", "user_id": SLOW_USER}
        )
        assert again.status_code == 200  # once the dead holder's lock expired
        for talk in conversations:
            await check_history(client, talk)
        await check_interrupted(client)


async def check_history(client: httpx.AsyncClient, talk: Conversation) -> None:
    for _text, status, after_kill in talk.sent:
        # Only a turn in flight on the dead process may fail, and then only with 502.
        assert status == 200 or (status == 502 and not after_kill), talk.sent
    assert sum(status == 502 for _, status, _ in talk.sent) <= 1
    stored = [m["content"] for m in await all_messages(client, talk.user) if m["role"] == "user"]
    sent = [text for text, _, _ in talk.sent]
    assert len(stored) == len(set(stored)), "a turn was stored twice"
    assert [text for text in sent if text in stored] == stored  # in order, nothing invented
    assert set(talk.acknowledged()) <= set(stored)  # nothing acknowledged is lost


async def all_messages(client: httpx.AsyncClient, user: str) -> list[dict[str, object]]:
    """Every stored message of ``user``'s session, page by page (a fast machine sends thousands)."""
    messages: list[dict[str, object]] = []
    after: int | None = 0
    while after is not None:
        page = await client.get(
            "/v1/sessions/default/messages",
            params={"limit": 1000, "after_seq": after},
            headers={"X-User-Id": user},
        )
        assert page.status_code == 200, page.text
        body = page.json()
        messages += body["messages"]
        after = body["next_after_seq"]
    return messages


async def check_interrupted(client: httpx.AsyncClient) -> None:
    page = await client.get(
        "/v1/sessions/default/messages", params={"limit": 100}, headers={"X-User-Id": SLOW_USER}
    )
    messages = page.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "slow, please"
    assert (messages[1].get("meta") or {}).get("status") == "interrupted"
    assert messages[3]["content"] == "You said: still there?"
