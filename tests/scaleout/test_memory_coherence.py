"""Memory and compaction across processes: two Hosts over one PostgreSQL store with Redis
locks (each its own caches, as two processes have), and two real ``agenthost serve``
processes behind random routing."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agenthost import Agent, Compaction, Host, LongTermMemory
from agenthost.coordination.redis import RedisCoordinator
from agenthost.errors import SessionErased
from agenthost.keys import SessionKey
from agenthost.models import FunctionModel, ModelReply, ModelRequest, OfflineModel, tool_call
from agenthost.models.tasks import SUMMARY_MARK
from agenthost.stores import open_store
from support.agents import MEMORY_AGENT
from support.processes import ServeProcess, launch
from support.services import drop_redis_prefix, redis_url, unique, with_query

ALICE = {"user_id": "alice", "tenant_id": "acme"}
SPAN = re.compile(r"Messages (\d+)-(\d+):")
DEADLINE = 60.0


@pytest.fixture
async def lock_url() -> AsyncIterator[str]:
    prefix = unique("memory-coherence")
    yield with_query(redis_url(), prefix=prefix)
    await drop_redis_prefix(redis_url(), f"{prefix}-lock")


def two_hosts(agent: Agent, pg_url: str, lock_url: str) -> tuple[Host, Host]:
    return (
        Host(agent, store=open_store(pg_url), coordinator=RedisCoordinator(lock_url)),
        Host(agent, store=open_store(pg_url), coordinator=RedisCoordinator(lock_url)),
    )


async def test_two_processes_never_compact_one_session_at_once(pg_url: str, lock_url: str) -> None:
    offline = OfflineModel()
    running = {"now": 0, "most": 0}
    spans: list[tuple[int, int]] = []

    async def model(request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(SUMMARY_MARK):
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            match = SPAN.search(request.messages[-1].content)
            assert match is not None
            spans.append((int(match.group(1)), int(match.group(2))))
            await asyncio.sleep(0.02)  # a summary takes a while: room for overlap
            running["now"] -= 1
        return offline.reply(request)

    agent = Agent(model=FunctionModel(model), history_window=8, compaction=Compaction())
    a, b = two_hosts(agent, pg_url, lock_url)
    async with a, b:
        await a.run("My name is Alice", **ALICE)
        rng = random.Random(7)
        for round_ in range(6):  # turns from both, some at once; each host compacts after its own

            async def turn(i: int, round_: int = round_) -> None:
                await rng.choice((a, b)).run(f"round {round_} message {i}", **ALICE)

            await asyncio.gather(*(turn(i) for i in range(4)))
        await asyncio.gather(a.upkeep.drain(), b.upkeep.drain())

        assert running["most"] == 1
        assert len(spans) >= 3
        assert spans[0][0] == 1
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start == end + 1  # every range summarised once, in order
        summaries = await a.store.summaries(SessionKey("acme", "alice", "default"))
        assert [s.version for s in summaries] == list(range(1, len(spans) + 1))
        for host in (a, b):
            assert (await host.run("What is my name?", **ALICE)).reply == "Your name is Alice."


async def test_memories_are_shared_and_an_erasure_fences_the_other_process(
    pg_url: str, lock_url: str
) -> None:
    offline = OfflineModel()
    release = asyncio.Event()
    thinking = asyncio.Event()

    async def model(request: ModelRequest) -> ModelReply:
        last = request.messages[-1]
        if last.role == "user" and last.content == "remember this later":
            thinking.set()
            await release.wait()
            return ModelReply(tool_calls=[tool_call("remember", {"text": "stale fact"})])
        return offline.reply(request)

    agent = Agent(model=FunctionModel(model), long_term_memory=LongTermMemory())
    a, b = two_hosts(agent, pg_url, lock_url)
    async with a, b:
        await a.memories.add("The user's name is Alice.", **ALICE)
        reply = await b.run("What is my name?", **ALICE, session_id="on-b")
        assert reply.reply == "Your name is Alice."  # b reads a's memory: nothing cached

        running = asyncio.create_task(a.run("remember this later", **ALICE, session_id="on-a"))
        try:
            await thinking.wait()
            assert await b.erase_user(**ALICE) == 2  # erased on b while a's turn is thinking
        finally:
            release.set()
        with pytest.raises(SessionErased):
            await running
        assert await a.memories.count(**ALICE) == 0
        assert await b.memories.count(**ALICE) == 0
        assert await a.sessions(**ALICE) == []


async def test_memory_and_summaries_across_two_serve_processes(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    coordination = with_query(redis_url(), prefix=unique("memory-serve-lock"))
    processes = await launch(
        servers,
        tmp_path,
        2,
        "--store",
        pg_url,
        "--coordination",
        coordination,
        "--agent",
        MEMORY_AGENT,
    )
    urls = [p.url for p in processes]
    rng = random.Random(11)
    headers = {"X-User-Id": "alice"}
    async with httpx.AsyncClient(timeout=DEADLINE) as client:

        async def chat(text: str, session: str, url: str | None = None) -> str:
            body = {"message": text, "user_id": "alice", "session_id": session}
            response = await client.post(f"{url or rng.choice(urls)}/v1/chat", json=body)
            assert response.status_code == 200, response.text
            reply: str = response.json()["reply"]
            return reply

        await chat("My name is Alice", "long")
        for i in range(30):
            await chat(f"small talk {i}", "long")

        async def settled() -> list[dict[str, Any]]:
            """Upkeep runs after the replies, in both processes: wait for it to show."""
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while True:
                listed = await client.get(f"{urls[0]}/v1/memories", headers=headers)
                session = await client.get(f"{urls[1]}/v1/sessions/long", headers=headers)
                body = session.json()
                summary = body.get("summary")
                memories: list[dict[str, Any]] = listed.json()["memories"]
                # no longer due (threshold 4): no compaction is queued or running
                if memories and summary and body["message_count"] - summary["to_seq"] < 4:
                    return memories
                assert asyncio.get_running_loop().time() < deadline, (listed.text, session.text)
                await asyncio.sleep(0.05)  # polling for background work, not ordering

        memories = await settled()
        assert [m["text"] for m in memories] == ["The user's name is Alice."]
        bodies = [
            (await client.get(f"{url}/v1/sessions/long", headers=headers)).json() for url in urls
        ]
        assert bodies[0]["summary"] == bodies[1]["summary"]  # one truth, whoever asks
        assert "The user's name is Alice." in bodies[0]["summary"]["text"]
        assert await chat("What is my name?", "long", urls[0]) == "Your name is Alice."
        assert await chat("What is my name?", "fresh", urls[1]) == "Your name is Alice."

        erased = await client.delete(f"{urls[1]}/v1/users/alice", headers=headers)
        assert erased.status_code == 200 and erased.json()["deleted"] == 2
        listed = await client.get(f"{urls[0]}/v1/memories", headers=headers)
        assert listed.json()["memories"] == []
        export = (await client.get(f"{urls[0]}/v1/users/alice/export", headers=headers)).json()
        assert (export["sessions"], export["memories"]) == ([], [])
        assert await chat("What is my name?", "again", urls[0]) == "I don't know your name yet."
