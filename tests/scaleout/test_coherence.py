"""Coherence across real ``agenthost serve`` processes: state, config and erasure.

Every request goes to a process picked at random over a new connection, as a
load balancer without sticky sessions would route it; each process keeps its
own cached copies, so these tests fail if any write trusts a cache.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx

from agenthost.keys import SessionKey
from support.processes import PrivatePostgres, PrivateRedis, ServeProcess, launch, opened
from support.services import redis_url, unique, with_query

DEADLINE = 60.0
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


async def _chat(client: httpx.AsyncClient, url: str, user: str, text: str, **extra: str) -> str:
    response = await client.post(f"{url}/v1/chat", json={"message": text, "user_id": user, **extra})
    assert response.status_code == 200, response.text
    reply: str = response.json()["reply"]
    return reply


async def _patch(
    client: httpx.AsyncClient, url: str, user: str, session: str, body: dict[str, object]
) -> httpx.Response:
    return await client.patch(
        f"{url}/v1/sessions/{session}", json=body, headers={"X-User-Id": user}
    )


async def _interleave_patches_and_turns(urls: list[str]) -> None:
    rng = random.Random(3)
    user, session = "patcher", "shared"
    async with httpx.AsyncClient(timeout=DEADLINE, limits=NO_KEEPALIVE) as client:
        await _chat(client, urls[0], user, "hello", session_id=session)
        await _chat(client, urls[-1], user, "hello again", session_id=session)  # cached by all

        async def patches(writer: int) -> None:
            for n in range(15):
                response = await _patch(
                    client, rng.choice(urls), user, session, {"state": {f"w{writer}_{n}": n}}
                )
                assert response.status_code == 200, response.text

        async def turns() -> None:
            for n in range(10):
                await _chat(client, rng.choice(urls), user, f"turn {n}", session_id=session)

        async def config() -> None:
            for n, temperature in enumerate((0.1, 0.2, 0.3)):
                url = urls[n % len(urls)]
                patch = {"config": {"temperature": temperature}}
                assert (await _patch(client, url, user, session, patch)).status_code == 200
                await _chat(
                    client, urls[(n + 1) % len(urls)], user, f"config {n}", session_id=session
                )

        await asyncio.gather(patches(0), patches(1), patches(2), turns(), config())
        for url in urls:
            response = await client.get(f"{url}/v1/sessions/{session}", headers={"X-User-Id": user})
            assert response.status_code == 200, response.text
            body = response.json()
            expected = {f"w{w}_{n}": n for w in range(3) for n in range(15)}
            assert body["state"] == expected  # 45 keys, every one of every patch
            assert body["config"] == {"temperature": 0.3}
            assert body["message_count"] == 2 * (2 + 10 + 3)


async def test_patches_and_turns_from_two_processes_on_postgres_and_redis(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    coordination = with_query(redis_url(), prefix=unique("coherence-lock"))
    processes = await launch(
        servers, tmp_path, 2, "--store", pg_url, "--coordination", coordination
    )
    await _interleave_patches_and_turns([p.url for p in processes])


async def test_patches_and_turns_with_two_sqlite_workers(
    servers: list[ServeProcess], tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    (server,) = await launch(servers, tmp_path, 1, "--store", store_url, "--workers", "2")
    await _interleave_patches_and_turns([server.url])


async def _wait_running(store_url: str, key: SessionKey) -> str:
    store = await opened(store_url)
    try:
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while True:  # the model is thinking: the user's message and run are stored
            snapshot = await store.load(key, window=1)
            if snapshot is not None and snapshot.running:
                return snapshot.running[0]
            assert asyncio.get_running_loop().time() < deadline, "the turn never started"
            await asyncio.sleep(0.02)
    finally:
        await store.close()


async def test_erase_is_final_across_processes_and_fences_a_running_turn(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    stale, eraser = await launch(
        servers, tmp_path, 2, "--store", pg_url, "--model", "offline:1000ms"
    )
    user = "erin"
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        await _chat(client, stale.url, user, "My name is Erin")  # cached by `stale`
        patch = {"state": {"secret": 42}}
        assert (await _patch(client, stale.url, user, "default", patch)).status_code == 200
        body = {"message": "a question", "user_id": user, "session_id": "busy"}
        running = asyncio.create_task(client.post(f"{stale.url}/v1/chat", json=body))
        await _wait_running(pg_url, SessionKey("default", user, "busy"))

        erased = await client.delete(f"{eraser.url}/v1/users/{user}", headers={"X-User-Id": user})
        assert erased.status_code == 200, erased.text
        assert erased.json()["deleted"] == 2

        response = await running  # its reply cannot be written through the erasure
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "session_erased"

        for server in (stale, eraser):
            export = await client.get(
                f"{server.url}/v1/users/{user}/export", headers={"X-User-Id": user}
            )
            assert export.status_code == 200
            assert export.json()["sessions"] == [], server.name
        # the stale process's copy cannot write the session back
        refused = await _patch(client, stale.url, user, "default", {"state": {"again": 1}})
        assert refused.status_code == 404, refused.text
        # a new turn starts a new, empty conversation: nothing erased returns with it
        reply = await _chat(client, stale.url, user, "What is my name?")
        assert "Erin" not in reply
        export = await client.get(
            f"{eraser.url}/v1/users/{user}/export", headers={"X-User-Id": user}
        )
        [session] = export.json()["sessions"]
        assert session["state"] == {}
        assert [m["content"] for m in session["messages"]][:1] == ["What is my name?"]
        assert len(session["messages"]) == 2
        assert all("Erin" not in m["content"] for m in session["messages"])


async def test_a_copy_of_a_session_erased_and_remade_elsewhere_is_not_caught_up(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    """A stale copy catches up by the messages after its last seq; a session erased and
    started anew elsewhere has such messages too (seqs 3, 4 after a copy at 2), but they
    continue another session: the copy must be read whole, the erased turns never mixed
    back into what the model sees."""
    cached, other = await launch(servers, tmp_path, 2, "--store", pg_url)
    user = "remade"
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        await _chat(client, cached.url, user, "My name is Olga")  # seqs 1-2, cached here
        erased = await client.delete(f"{other.url}/v1/users/{user}", headers={"X-User-Id": user})
        assert erased.status_code == 200 and erased.json()["deleted"] == 1
        await _chat(client, other.url, user, "hello")  # a new session: seqs 1-2
        await _chat(client, other.url, user, "how are you?")  # seqs 3-4
        reply = await _chat(client, cached.url, user, "What is my name?")
        assert reply == "I don't know your name yet."  # Olga was erased
        export = await client.get(
            f"{cached.url}/v1/users/{user}/export", headers={"X-User-Id": user}
        )
        [session] = export.json()["sessions"]
        contents = [m["content"] for m in session["messages"]]
        assert contents[::2] == ["hello", "how are you?", "What is my name?"]
        assert [m["seq"] for m in session["messages"]] == list(range(1, 7))


async def test_a_store_outage_mid_turn_heals_on_the_next_turn(
    private_postgres: PrivatePostgres, servers: list[ServeProcess], tmp_path: Path
) -> None:
    store_url = f"{private_postgres.url}?lock_ttl=3"
    (server,) = await launch(
        servers, tmp_path, 1, "--store", store_url, "--model", "offline:1500ms"
    )
    key = SessionKey("default", "olga", "default")
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        first = await _chat(client, server.url, "olga", "My name is Olga")
        assert first
        body = {"message": "a question during the outage", "user_id": "olga"}
        turn = asyncio.create_task(client.post(f"{server.url}/v1/chat", json=body))
        run_id = await _wait_running(store_url, key)
        await asyncio.to_thread(private_postgres.stop)
        response = await turn
        assert response.status_code == 503, response.text
        await asyncio.to_thread(private_postgres.start)

        reply = await _chat(client, server.url, "olga", "What is my name?")
        assert reply == "Your name is Olga."
    store = await opened(store_url)
    try:
        messages = await store.messages(key)
        assert [m.role for m in messages] == ["user", "assistant"] * 3
        assert [m.seq for m in messages] == list(range(1, 7))
        assert messages[2].content == "a question during the outage"  # acknowledged: kept
        assert messages[3].meta is not None and messages[3].meta["status"] == "interrupted"
        run = await store.get_run(run_id)
        assert run is not None and run.status == "interrupted"
    finally:
        await store.close()


async def test_a_turn_that_lost_its_lock_to_a_redis_restart_cannot_commit(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    """Redis restarts empty while a turn holds its lock: a second process takes the lock
    and runs a turn; the first turn's writes are refused at the store (its revision is
    stale), so the history stays one well-formed conversation."""
    redis = PrivateRedis()
    redis.start()
    try:
        coordination = f"{redis.url}?lock_ttl=30"
        first, second = await launch(
            servers,
            tmp_path,
            2,
            "--store",
            pg_url,
            "--coordination",
            coordination,
            "--model",
            "offline:2000ms",
        )
        key = SessionKey("default", "rita", "default")
        async with httpx.AsyncClient(timeout=DEADLINE) as client:
            body = {"message": "first process", "user_id": "rita"}
            lost = asyncio.create_task(client.post(f"{first.url}/v1/chat", json=body))
            run_id = await _wait_running(pg_url, key)
            await asyncio.to_thread(redis.restart_empty)
            reply = await _chat(client, second.url, "rita", "second process")
            assert reply == "You said: second process"
            response = await lost
            assert response.status_code == 409, response.text
            assert response.json()["error"]["code"] == "conflict"
        store = await opened(pg_url)
        try:
            messages = await store.messages(key)
            assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
            assert [m.content for m in messages[::2]] == ["first process", "second process"]
            assert messages[1].meta is not None and messages[1].meta["status"] == "interrupted"
            run = await store.get_run(run_id)
            assert run is not None and run.status == "interrupted"
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(redis.destroy)
