"""Several ``agenthost serve`` processes on one PostgreSQL or Redis: the real deployment.

No sticky sessions: every turn goes to a process picked at random. The checks
read the store directly afterwards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agenthost.keys import SessionKey
from agenthost.stores import SessionStore
from support.processes import PrivatePostgres, ServeProcess, launch, opened
from support.services import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_url,
    redis_url,
    unique,
    with_query,
)

SESSIONS = 20
TURNS = 50
DEADLINE = 60.0


@pytest.fixture
async def store_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Parametrized indirectly with ``"postgres"`` or ``"redis"``: a fresh namespace's URL."""
    kind: str = request.param
    base = postgres_url() if kind == "postgres" else redis_url()
    namespace = unique("serve")
    if kind == "postgres":
        yield with_query(base, schema=namespace)
        await drop_postgres_schema(base, namespace)
    else:
        yield with_query(base, prefix=namespace)
        await drop_redis_prefix(base, namespace)
        await drop_redis_prefix(base, f"{namespace}-lock")


def tag(user: str, session: str) -> str:
    return f"<{user}|{session}>"


async def check_conversation(store: SessionStore, user: str, session: str, turns: int) -> None:
    """Exactly ``turns`` user/assistant pairs, seq 1.., in order, all of this session only."""
    messages = await store.messages(SessionKey("default", user, session))
    mine = tag(user, session)
    assert [m.seq for m in messages] == list(range(1, 2 * turns + 1)), (user, session)
    assert [m.role for m in messages] == ["user", "assistant"] * turns
    assert [m.content for m in messages[::2]] == [f"{mine} turn {i}" for i in range(turns)]
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert answer.run_id == question.run_id
        assert answer.content == f"You said: {question.content}"
    assert all(m.content.count("<") == 1 for m in messages)  # no other session's tag


@pytest.mark.parametrize(
    ("store_url", "coordination"),
    [("postgres", None), ("postgres", "redis"), ("redis", None)],
    indirect=["store_url"],
)
async def test_two_processes_many_sessions_random_routing(
    store_url: str, coordination: str | None, servers: list[ServeProcess], tmp_path: Path
) -> None:
    args = ["--store", store_url]
    if coordination == "redis":
        args += ["--coordination", with_query(redis_url(), prefix=unique("serve-coordination"))]
    processes = await launch(servers, tmp_path, 2, *args)
    users = [f"user{i}" for i in range(SESSIONS // 2)]
    pairs = [(u, s) for u in users for s in ("s1", "s2")]  # user A's s1 is not user B's s1
    rng = random.Random(5)

    async def converse(client: httpx.AsyncClient, user: str, session: str) -> None:
        for turn in range(TURNS):
            server = rng.choice(processes)
            response = await client.post(
                f"{server.url}/v1/chat",
                json={
                    "message": f"{tag(user, session)} turn {turn}",
                    "user_id": user,
                    "session_id": session,
                },
            )
            assert response.status_code == 200, (server.name, response.text)
            assert response.json()["reply"] == f"You said: {tag(user, session)} turn {turn}"

    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        await asyncio.gather(*(converse(client, u, s) for u, s in pairs))
    store = await opened(store_url)
    try:
        assert await store.count_sessions() == SESSIONS
        for user, session in pairs:
            await check_conversation(store, user, session, TURNS)
    finally:
        await store.close()


async def running_runs(store: Any, key: SessionKey) -> list[str]:
    """The runs the store shows running in ``key``'s session, once there is one."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:  # polling the store, with a deadline
        snapshot = await store.load(key, window=5)
        if snapshot is not None and snapshot.running:
            return list(snapshot.running)
        assert asyncio.get_running_loop().time() < deadline, "the turn never started"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("store_url", ["postgres", "redis"], indirect=True)
async def test_a_turn_sent_to_another_process_queues_behind_the_running_one(
    store_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    """On PostgreSQL the lease rides on the turn's writes: the second process's first
    write is refused while the first turn runs, and it waits; it does not call its
    model until the first turn is stored, and nothing interleaves."""
    first, second = await launch(
        servers, tmp_path, 2, "--store", store_url, "--model", "offline:1500ms"
    )
    key = SessionKey("default", "alice", "default")
    store = await opened(store_url)
    try:
        async with httpx.AsyncClient(timeout=DEADLINE) as client:
            body = {"message": "first", "user_id": "alice"}
            one = asyncio.create_task(client.post(f"{first.url}/v1/chat", json=body))
            running = await running_runs(store, key)  # the model thinks: the turn holds it
            body = {"message": "second", "user_id": "alice"}
            two = await client.post(f"{second.url}/v1/chat", json=body)
            assert one.done()  # answered only after the first turn was
            assert (await one).status_code == 200
            assert two.status_code == 200, two.text
        messages = await store.messages(key)
        assert [m.content for m in messages] == [
            "first",
            "You said: first",
            "second",
            "You said: second",
        ]
        runs = await store.runs(key)
        assert sorted(r.status for r in runs) == ["completed", "completed"]
        assert running[0] in {r.run_id for r in runs}
    finally:
        await store.close()


@pytest.mark.parametrize("store_url", ["postgres", "redis"], indirect=True)
async def test_a_killed_lock_holder_frees_its_session_and_its_run_is_interrupted(
    store_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    store_url = f"{store_url}&lock_ttl=3"
    doomed, survivor = await launch(
        servers, tmp_path, 2, "--store", store_url, "--model", "offline:1500ms"
    )
    key = SessionKey("default", "alice", "default")
    store = await opened(store_url)
    try:
        async with httpx.AsyncClient(timeout=DEADLINE) as client:
            body = {"message": "a question for the doomed process", "user_id": "alice"}
            doomed_turn = asyncio.create_task(client.post(f"{doomed.url}/v1/chat", json=body))
            running = await running_runs(store, key)  # the model thinks: the turn holds it
            doomed.kill()
            with pytest.raises(httpx.TransportError):
                await doomed_turn

            response = await client.post(
                f"{survivor.url}/v1/chat", json={"message": "are you there?", "user_id": "alice"}
            )
            assert response.status_code == 200, response.text
        run = await store.get_run(running[0])
        assert run is not None
        assert run.status == "interrupted"
        messages = await store.messages(key)
        assert [m.seq for m in messages] == [1, 2, 3, 4]
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[1].meta is not None and messages[1].meta["status"] == "interrupted"
        assert messages[3].content == "You said: are you there?"
    finally:
        await store.close()


async def test_a_database_restart_under_load_gives_503s_and_loses_nothing_acknowledged(
    private_postgres: PrivatePostgres, servers: list[ServeProcess], tmp_path: Path
) -> None:
    store_url = f"{private_postgres.url}?lock_ttl=3"
    processes = await launch(servers, tmp_path, 2, "--store", store_url)
    statuses: list[int] = []
    acknowledged: dict[tuple[str, str], list[str]] = {}
    done = asyncio.Event()
    rng = random.Random(11)

    async def converse(client: httpx.AsyncClient, user: str) -> None:
        turn = 0
        while not done.is_set():
            text = f"{tag(user, 'default')} turn {turn}"
            turn += 1
            server = rng.choice(processes)
            try:
                response = await client.post(
                    f"{server.url}/v1/chat", json={"message": text, "user_id": user}
                )
            except httpx.TransportError as exc:  # the processes stay up: this is a failure
                raise AssertionError(f"{server.name} dropped a request: {exc!r}") from exc
            statuses.append(response.status_code)
            if response.status_code == 200:
                acknowledged.setdefault((user, "default"), []).append(text)
            else:
                assert response.json()["error"]["code"] in ("store_unavailable",), response.text
                await asyncio.sleep(0.05)  # a client backing off

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        load = [asyncio.create_task(converse(client, f"user{i}")) for i in range(8)]
        try:
            await until(lambda: statuses.count(200) >= 40, "turns before the outage")
            await asyncio.to_thread(private_postgres.stop)
            await until(lambda: statuses.count(503) >= 10, "503s during the outage")
            for server in processes:
                assert (await client.get(f"{server.url}/readyz")).status_code == 503
            before_restart = statuses.count(200)
            await asyncio.to_thread(private_postgres.start)
            await until(lambda: statuses.count(200) >= before_restart + 40, "recovery")
            for server in processes:
                assert (await client.get(f"{server.url}/readyz")).status_code == 200
        finally:
            done.set()
            await asyncio.gather(*load)
    assert set(statuses) <= {200, 503}, sorted(set(statuses))

    store = await opened(store_url)
    try:
        for (user, session), texts in acknowledged.items():
            messages = await store.messages(SessionKey("default", user, session))
            assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
            stored = {m.content: m for m in messages if m.role == "user"}
            for text in texts:  # every acknowledged turn, with its reply after it
                assert text in stored, (user, text)
                question = stored[text]
                answer = messages[question.seq]  # seq n+1 is at index n
                assert (answer.role, answer.run_id) == ("assistant", question.run_id)
                assert answer.content == f"You said: {text}"
    finally:
        await store.close()


async def test_sqlite_with_two_workers_keeps_sessions_contiguous(
    servers: list[ServeProcess], tmp_path: Path
) -> None:
    """``--workers 2`` on one SQLite file: the fcntl file-lock coordinator orders turns."""
    database = tmp_path / "shared.db"
    store_url = f"sqlite:///{database}"
    (server,) = await launch(servers, tmp_path, 1, "--store", store_url, "--workers", "2")
    users = [f"user{i}" for i in range(6)]

    async def converse(client: httpx.AsyncClient, user: str) -> None:
        for turn in range(15):
            text = f"{tag(user, 'default')} turn {turn}"
            response = await client.post(
                f"{server.url}/v1/chat", json={"message": text, "user_id": user}
            )
            assert response.status_code == 200, response.text

    async def pummel(client: httpx.AsyncClient) -> None:  # one session from many connections
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{server.url}/v1/chat",
                    json={"message": f"{tag('shared', 'default')} turn {i}", "user_id": "shared"},
                )
                for i in range(12)
            )
        )
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]

    limits = httpx.Limits(max_keepalive_connections=0)  # new connections spread over workers
    async with httpx.AsyncClient(timeout=DEADLINE, limits=limits) as client:
        await asyncio.gather(pummel(client), *(converse(client, u) for u in users))
    assert await asyncio.to_thread(Path(f"{database}.locks").exists)  # the coordinator's file
    store = await opened(store_url)
    try:
        for user in users:
            await check_conversation(store, user, "default", 15)
        shared = await store.messages(SessionKey("default", "shared", "default"))
        assert [m.seq for m in shared] == list(range(1, 25))
        assert [m.role for m in shared] == ["user", "assistant"] * 12
        for question, answer in zip(shared[::2], shared[1::2], strict=True):
            assert answer.content == f"You said: {question.content}"
    finally:
        await store.close()
