"""Runs across real ``agenthost serve`` processes: idempotent retry storms, background runs
followed, resumed and cancelled from the other process, A2A tasks from any process.

Two deployments: two processes on PostgreSQL with Redis locks (each test talks to
both by URL), and one ``--workers 2`` server on SQLite (new connections land on
either worker). The model takes as long as the test asks (``support.ticking``), so a
run is in progress by construction, never by a sleep in the test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agenthost.keys import SessionKey
from support.processes import ServeProcess, launch, opened
from support.services import (
    drop_postgres_schema,
    postgres_url,
    redis_url,
    unique,
    with_query,
)
from support.ticking import ticks

DEADLINE = 60.0
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)
AGENT = ("--agent", "support.ticking:agent", "--run-poll-interval", "0.05")
USER = {"X-User-Id": "runner"}

Event = tuple[int, str, dict[str, Any]]


@dataclass
class Deployment:
    urls: list[str]  # one per process (or one URL served by two workers, twice)
    store_url: str

    @property
    def a(self) -> str:
        return self.urls[0]

    @property
    def b(self) -> str:
        return self.urls[1]


@pytest.fixture(params=["postgres+redis", "sqlite-workers"])
async def deployment(
    request: pytest.FixtureRequest, servers: list[ServeProcess], tmp_path: Path
) -> AsyncIterator[Deployment]:
    if request.param == "postgres+redis":
        base = postgres_url()
        schema = unique("runs")
        store_url = with_query(base, schema=schema)
        coordination = with_query(redis_url(), prefix=unique("runs-lock"))
        try:
            a, b = await launch(
                servers, tmp_path, 2, "--store", store_url, "--coordination", coordination, *AGENT
            )
            yield Deployment([a.url, b.url], store_url)
        finally:
            for server in servers:  # before the schema goes
                await server.stop()
            await drop_postgres_schema(base, schema)
        return
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    (server,) = await launch(servers, tmp_path, 1, "--store", store_url, "--workers", "2", *AGENT)
    yield Deployment([server.url, server.url], store_url)


async def sse(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    seen: dict[str, str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Event]:
    """(id, type, data) of each event; leaving the loop drops the connection. ``seen``
    receives the response's headers."""
    async with client.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        if seen is not None:
            seen.update(response.headers)
        block: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue  # keep-alive
            if line:
                name, _, value = line.partition(": ")
                block[name] = value
            elif "data" in block:
                yield int(block.get("id", 0)), block.get("event", ""), json.loads(block["data"])
                block = {}


async def follow(
    client: httpx.AsyncClient, url: str, run_id: str, *, last: int | None = None, take: int = 0
) -> list[Event]:
    """The run's events after ``last`` (``Last-Event-ID``): ``take`` of them, then the
    connection is dropped, or all of them to the end when ``take`` is 0."""
    headers = {**USER, **({"Last-Event-ID": str(last)} if last is not None else {})}
    got: list[Event] = []
    async for event in sse(client, "GET", f"{url}/v1/runs/{run_id}/events", headers=headers):
        got.append(event)
        if len(got) == take:
            break
    return got


def assert_seamless(events: list[Event], count: int) -> None:
    """Ids 1..n in order; every delta once, in order; the end names exactly what streamed."""
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    deltas = [data["text"] for _id, kind, data in events if kind == "delta"]
    assert deltas == ticks(count)[: len(deltas)]
    *_, (_, kind, end) = events
    assert kind == "done" and end["reply"] == "".join(deltas)


async def test_a_retry_storm_on_both_processes_runs_the_turn_once(
    deployment: Deployment,
) -> None:
    body = {"message": "tick 6 40", "user_id": "stormy", "session_id": "storm"}
    headers = {"Idempotency-Key": f"storm-{uuid.uuid4()}"}
    async with httpx.AsyncClient(timeout=DEADLINE, limits=NO_KEEPALIVE) as client:

        async def json_call(i: int) -> dict[str, Any]:
            url = deployment.urls[i % 2]
            response = await client.post(f"{url}/v1/chat", json=body, headers=headers)
            assert response.status_code == 200, response.text
            return {**response.json(), "replayed": response.headers.get("idempotent-replayed")}

        async def stream_call(i: int) -> dict[str, Any]:
            url = deployment.urls[i % 2]
            seen: dict[str, str] = {}
            stream = {**body, "stream": True}
            events = [
                e
                async for e in sse(
                    client, "POST", f"{url}/v1/chat", json=stream, headers=headers, seen=seen
                )
            ]
            assert_seamless(events, 6)
            result = {k: v for k, v in events[-1][2].items() if k != "type"}
            return {**result, "replayed": seen.get("idempotent-replayed")}

        results = await asyncio.gather(
            *(json_call(i) if i % 5 else stream_call(i) for i in range(50))
        )
        after = await json_call(0)  # once it is over: the same answer, from the record
        changed = await client.post(
            f"{deployment.b}/v1/chat", json={**body, "message": "tick 1 1"}, headers=headers
        )
    first = results[0]
    assert first["reply"] == "t1 t2 t3 t4 t5 t6"
    for result in [*results, after]:
        assert {k: result[k] for k in ("run_id", "reply", "session_id", "status", "usage")} == {
            k: first[k] for k in ("run_id", "reply", "session_id", "status", "usage")
        }
    assert [r["replayed"] for r in results].count(None) == 1  # the one that ran it
    assert after["replayed"] == "true"
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"

    store = await opened(deployment.store_url)
    try:
        key = SessionKey("default", "stormy", "storm")
        runs = await store.runs(key)
        messages = await store.messages(key)
    finally:
        await store.close()
    assert [r.run_id for r in runs] == [first["run_id"]]  # exactly one turn ran
    assert [(m.role, m.content) for m in messages] == [
        ("user", "tick 6 40"),
        ("assistant", "t1 t2 t3 t4 t5 t6"),
    ]


async def test_a_background_run_is_followed_resumed_and_cancelled_from_the_other_process(
    deployment: Deployment,
) -> None:
    a, b = deployment.a, deployment.b
    async with httpx.AsyncClient(timeout=DEADLINE, limits=NO_KEEPALIVE) as client:
        started = await client.post(
            f"{a}/v1/chat",
            json={"message": "tick 400 40", "session_id": "bg", "background": True},
            headers=USER,
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert started.headers["location"] == f"/v1/runs/{run_id}"
        status = (await client.get(f"{b}/v1/runs/{run_id}", headers=USER)).json()
        assert status["status"] == "running" and status["published"] is True

        first = await follow(client, b, run_id, take=4)  # then the connection drops
        second = await follow(client, a, run_id, last=first[-1][0], take=4)
        assert [e[0] for e in first + second] == list(range(1, 9))

        reached = asyncio.Event()
        rest: list[Event] = []

        async def the_rest() -> None:
            headers = {**USER, "Last-Event-ID": str(second[-1][0])}
            url = f"{b}/v1/runs/{run_id}/events"
            async for event in sse(client, "GET", url, headers=headers):
                rest.append(event)
                reached.set()

        reader = asyncio.create_task(the_rest())
        await asyncio.wait_for(reached.wait(), DEADLINE)
        canceled = await client.post(f"{b}/v1/runs/{run_id}/cancel", headers=USER)
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "interrupted"
        await asyncio.wait_for(reader, DEADLINE)

        events = first + second + rest
        assert_seamless(events, 400)
        end = events[-1][2]
        assert (end["status"], end["error"]) == ("interrupted", "canceled by the client")
        assert 9 < len(events) < 400  # it was cut short, and we saw it running
        for url in (a, b):  # the log is one, whichever process serves it
            assert await follow(client, url, run_id) == events
            shown = (await client.get(f"{url}/v1/runs/{run_id}", headers=USER)).json()
            assert shown["status"] == "interrupted" and shown["result"] == end
        again = await client.post(f"{a}/v1/runs/{run_id}/cancel", headers=USER)
        assert again.status_code == 409

    store = await opened(deployment.store_url)
    try:
        run = await store.get_run(run_id)
        messages = await store.messages(SessionKey("default", "runner", "bg"))
    finally:
        await store.close()
    assert run is not None and (run.status, run.error) == ("interrupted", "canceled by the client")
    assert messages[-1].content == end["reply"] and messages[-1].meta == {
        "status": "interrupted",
        "error": "canceled by the client",
    }


async def test_a_stream_left_by_its_client_runs_on_and_resumes_elsewhere(
    servers: list[ServeProcess], pg_url: str, tmp_path: Path
) -> None:
    coordination = with_query(redis_url(), prefix=unique("runs-lock"))
    a, b = await launch(
        servers,
        tmp_path,
        2,
        "--store",
        pg_url,
        "--coordination",
        coordination,
        "--on-disconnect",
        "continue",
        *AGENT,
    )
    body = {"message": "tick 12 30", "session_id": "left", "stream": True}
    async with httpx.AsyncClient(timeout=DEADLINE, limits=NO_KEEPALIVE) as client:
        first: list[Event] = []
        async with client.stream("POST", f"{a.url}/v1/chat", json=body, headers=USER) as response:
            run_id = response.headers["x-agenthost-run-id"]
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    first.append((int(line[4:]), "delta", {}))
                if len(first) == 3:
                    break  # the client goes away mid-turn
        rest = await follow(client, b.url, run_id, last=3)
        assert [e[0] for e in rest] == list(range(4, 14))
        assert rest[-1][2]["status"] == "completed" and rest[-1][2]["reply"] == "".join(ticks(12))
        assert_seamless(await follow(client, a.url, run_id), 12)


async def test_a2a_tasks_are_followed_and_cancelled_from_the_other_process(
    servers: list[ServeProcess], pg_url: str, tmp_path: Path
) -> None:
    coordination = with_query(redis_url(), prefix=unique("runs-lock"))
    a, b = await launch(
        servers, tmp_path, 2, "--store", pg_url, "--coordination", coordination, *AGENT
    )
    message_id = str(uuid.uuid4())
    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": message_id,
                "role": "ROLE_USER",
                "parts": [{"text": "tick 400 40"}],
            },
            "configuration": {"returnImmediately": True},
        },
    }
    async with httpx.AsyncClient(timeout=DEADLINE, limits=NO_KEEPALIVE) as client:
        task = (await client.post(f"{a.url}/a2a", json=send, headers=USER)).json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_WORKING"
        resent = (await client.post(f"{b.url}/a2a", json=send, headers=USER)).json()
        assert resent["result"]["task"]["id"] == task["id"]  # the same message: the same task

        subscribe = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "SubscribeToTask",
            "params": {"id": task["id"]},
        }
        updates: list[dict[str, Any]] = []
        reached = asyncio.Event()

        async def subscriber() -> None:
            headers = {**USER, "Accept": "text/event-stream"}
            async for _id, _kind, data in sse(
                client, "POST", f"{b.url}/a2a", json=subscribe, headers=headers
            ):
                updates.append(data["result"])
                if "artifactUpdate" in data["result"]:
                    reached.set()

        reader = asyncio.create_task(subscriber())
        await asyncio.wait_for(reached.wait(), DEADLINE)
        cancel = {"jsonrpc": "2.0", "id": 3, "method": "CancelTask", "params": {"id": task["id"]}}
        canceled = (await client.post(f"{b.url}/a2a", json=cancel, headers=USER)).json()
        assert canceled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
        await asyncio.wait_for(reader, DEADLINE)
        assert "task" in updates[0]
        assert updates[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_CANCELED"
        get = {"jsonrpc": "2.0", "id": 4, "method": "GetTask", "params": {"id": task["id"]}}
        got = (await client.post(f"{a.url}/a2a", json=get, headers=USER)).json()["result"]
        assert got["status"]["state"] == "TASK_STATE_CANCELED"
        assert got["status"]["message"]["parts"][0]["text"] == "canceled by the client"
