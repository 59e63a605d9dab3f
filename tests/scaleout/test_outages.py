"""Redis going away and coming back: clear errors (503 over HTTP), then recovery without
restart. (The PostgreSQL outage runs under load in ``test_serve_processes.py``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agenthost import Agent, Host
from agenthost.coordination import build_coordinator
from agenthost.coordination.redis import RedisCoordinator
from agenthost.errors import StoreUnavailable
from agenthost.stores import open_store
from support.processes import PrivateRedis, ServeProcess


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        await asyncio.to_thread(server.start)
        yield server
    finally:
        await asyncio.to_thread(server.destroy)


async def test_a_redis_outage_is_store_unavailable_and_passes(private_redis: PrivateRedis) -> None:
    url = f"{private_redis.url}?lock_ttl=2"
    coordinator = build_coordinator(url)
    assert isinstance(coordinator, RedisCoordinator)
    host = Host(
        Agent(name="outage"), store=open_store(url), coordinator=coordinator, cleanup_interval=None
    )
    async with host:
        await host.run("My name is Alice", user_id="alice")
        await asyncio.to_thread(private_redis.stop)
        with pytest.raises(StoreUnavailable, match="Redis"):
            await host.run("still there?", user_id="alice")
        with pytest.raises(StoreUnavailable):
            await host.store.ping()
        with pytest.raises(StoreUnavailable, match="Redis coordination"):
            await coordinator.ping()

        await asyncio.to_thread(private_redis.start)  # same port, same append-only file
        await host.store.ping()
        await coordinator.ping()
        reply = await host.run("What is my name?", user_id="alice")
        assert "Alice" in reply.text  # the acknowledged turn survived the restart
        history = await host.history(user_id="alice")
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        assert [m.role for m in history] == ["user", "assistant"] * (len(history) // 2)
        assert history[0].content == "My name is Alice"


async def test_serve_with_redis_coordination_answers_503_while_redis_is_down(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    server = ServeProcess(
        tmp_path,
        "serve",
        "--store",
        f"sqlite:///{tmp_path / 'agenthost.db'}",
        "--coordination",
        private_redis.url,
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            body = {"message": "My name is Alice", "user_id": "alice"}
            assert (await client.post("/v1/chat", json=body)).status_code == 200
            await asyncio.to_thread(private_redis.stop)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "store_unavailable"
            refused = await client.post("/v1/chat", json={**body, "message": "hello?"})
            assert refused.status_code == 503, refused.text
            assert "Redis coordination" in refused.json()["error"]["message"]

            await asyncio.to_thread(private_redis.start)
            assert (await client.get("/readyz")).status_code == 200
            answer = await client.post(
                "/v1/chat", json={"message": "What is my name?", "user_id": "alice"}
            )
            assert answer.status_code == 200
            assert "Alice" in answer.json()["reply"]
    finally:
        await server.stop()
