"""``/v1/runs``, background turns and ``Idempotency-Key`` through the HTTP API, in-process.

The model is gated (``support.gated``): a run stays in progress until the test
releases it. Real processes and real connections are in
``tests/scaleout/test_runs_across_processes.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serverkit import make_app, parse_sse
from test_sse import LeavingClient, chat_scope

from agenthost import Agent, Host, MemoryStore, SQLiteStore
from agenthost.coordination.files import FileLockCoordinator
from agenthost.runs import RunOptions
from agenthost.settings import Settings
from support.gated import GatedModel
from support.serve import API_KEYS, bearer

FAST = RunOptions(poll_interval=0.01, flush_interval=0.001)
ALICE, BOB, ADMIN = bearer("alice"), bearer("bob"), bearer("admin")


@dataclass
class App:
    client: httpx.AsyncClient
    model: GatedModel
    host: Host


def keyed_settings(**more: object) -> Settings:
    return Settings.load({"store": "memory://", "auth": "api-keys", "api_keys": API_KEYS, **more})


@pytest.fixture
async def app() -> AsyncIterator[App]:
    model = GatedModel()
    host = Host(Agent(name="a", model=model), store=MemoryStore(max_messages=None), runs=FAST)
    application = make_app(keyed_settings(), host=host)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield App(client, model, host)
    model.release(1000)
    await host.close()


async def background(app: App, text: str, **more: object) -> str:
    body = {"message": text, "session_id": "s", "background": True, **more}
    response = await app.client.post("/v1/chat", json=body, headers=ALICE)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    assert response.headers["x-agenthost-run-id"] == run_id
    return run_id


async def test_a_background_run_answers_202_and_is_read_followed_and_resumed(app: App) -> None:
    run_id = await background(app, "count 3")
    shown = (await app.client.get(f"/v1/runs/{run_id}", headers=ALICE)).json()
    assert (shown["status"], shown["result"], shown["session_id"]) == ("running", None, "s")
    app.model.release(3)
    events = (await app.client.get(f"/v1/runs/{run_id}/events", headers=ALICE)).text
    frames = [block.splitlines()[1] for block in events.strip().split("\n\n")]
    assert frames == ["id: 1", "id: 2", "id: 3", "id: 4"]
    parsed = parse_sse(events)
    assert [t for t, _ in parsed] == ["delta", "delta", "delta", "done"]
    assert parsed[-1][1]["reply"] == "w1 w2 w3"

    resumed = await app.client.get(
        f"/v1/runs/{run_id}/events", headers={**ALICE, "Last-Event-ID": "2"}
    )
    assert parse_sse(resumed.text) == parsed[2:]
    by_query = await app.client.get(f"/v1/runs/{run_id}/events?after=3", headers=ALICE)
    assert parse_sse(by_query.text) == parsed[3:]
    finished = (await app.client.get(f"/v1/runs/{run_id}", headers=ALICE)).json()
    assert finished["status"] == "completed" and finished["result"] == parsed[-1][1]
    assert finished["usage"]["requests"] == 1 and finished["published"] is True


async def test_runs_are_the_callers_own(app: App) -> None:
    run_id = await background(app, "count 1")
    for method, path in (
        ("GET", f"/v1/runs/{run_id}"),
        ("GET", f"/v1/runs/{run_id}/events"),
        ("POST", f"/v1/runs/{run_id}/cancel"),
    ):
        response = await app.client.request(method, path, headers=BOB)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await app.client.get(f"/v1/runs/{run_id}", headers=ADMIN)).status_code == 200
    unknown = await app.client.get("/v1/runs/run_nothing", headers=ALICE)
    assert unknown.status_code == 404
    bad = await app.client.get(f"/v1/runs/{run_id}/events", headers={**ALICE, "Last-Event-ID": "x"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["error"]["message"]
    negative = await app.client.get(f"/v1/runs/{run_id}/events?after=-1", headers=ALICE)
    assert negative.status_code == 422


async def test_cancel_interrupts_a_running_run_once(app: App) -> None:
    run_id = await background(app, "count 5")
    app.model.release(2)
    first = await anext(app.host.runner.follow(run_id, after=1))  # the second word is out
    assert first.data == {"type": "delta", "text": "w2 "}
    canceled = await app.client.post(f"/v1/runs/{run_id}/cancel", headers=ALICE)
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert (body["status"], body["error"]) == ("interrupted", "canceled by the client")
    assert body["result"]["reply"] == "w1 w2 "
    again = await app.client.post(f"/v1/runs/{run_id}/cancel", headers=ALICE)
    assert again.status_code == 409 and "already ended" in again.json()["error"]["message"]
    messages = (await app.client.get("/v1/sessions/s/messages", headers=ALICE)).json()
    assert [m["content"] for m in messages["messages"]] == ["count 5", "w1 w2 "]


async def test_a_retried_request_gets_the_first_result(app: App) -> None:
    headers = {**ALICE, "Idempotency-Key": "order-42"}
    body = {"message": "count 2", "session_id": "s"}
    first_call = asyncio.create_task(app.client.post("/v1/chat", json=body, headers=headers))
    retry = asyncio.create_task(app.client.post("/v1/chat", json=body, headers=headers))
    app.model.release(2)
    first, second = await first_call, await retry
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["reply"] == "w1 w2"
    assert sorted(r.headers.get("idempotent-replayed", "-") for r in (first, second)) == [
        "-",
        "true",
    ]
    assert app.model.calls == 1
    later = await app.client.post("/v1/chat", json=body, headers=headers)
    assert later.json() == first.json() and later.headers["idempotent-replayed"] == "true"
    as_stream = await app.client.post("/v1/chat", json={**body, "stream": True}, headers=headers)
    assert parse_sse(as_stream.text)[-1][1]["run_id"] == first.json()["run_id"]

    reused = await app.client.post("/v1/chat", json={**body, "message": "count 1"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    bob = app.client.post("/v1/chat", json=body, headers={**BOB, "Idempotency-Key": "order-42"})
    app.model.release(2)
    assert (await bob).json()["run_id"] != first.json()["run_id"]  # keys are per caller
    assert app.model.calls == 2
    control = await app.client.post(
        "/v1/chat", json=body, headers={**ALICE, "Idempotency-Key": "a\tb"}
    )
    assert control.status_code == 422


async def test_a_background_retry_names_the_same_run(app: App) -> None:
    headers = {**ALICE, "Idempotency-Key": "bg-1"}
    body = {"message": "count 1", "session_id": "s", "background": True}
    one = await app.client.post("/v1/chat", json=body, headers=headers)
    two = await app.client.post("/v1/chat", json=body, headers=headers)
    assert one.status_code == two.status_code == 202
    assert one.json()["run_id"] == two.json()["run_id"]
    app.model.release(1)


async def test_a_refused_run_frees_its_key(app: App) -> None:
    headers = {**ALICE, "Idempotency-Key": "refused-1"}
    body = {"message": "count 1", "session_id": "s", "config": {"model": "no-such-model"}}
    for _ in range(2):  # refused before it began, each time: nothing keeps the key
        refused = await app.client.post("/v1/chat", json=body, headers=headers)
        assert refused.status_code == 422, refused.text
    app.model.release(1)
    ok = await app.client.post("/v1/chat", json={**body, "config": None}, headers=headers)
    assert ok.status_code == 200 and ok.json()["reply"] == "w1"
    assert "idempotent-replayed" not in ok.headers


async def test_openai_compatible_retries_get_the_same_completion(app: App) -> None:
    headers = {**ALICE, "Idempotency-Key": "chat-7"}
    body = {"model": "a", "messages": [{"role": "user", "content": "count 2"}]}
    app.model.release(2)
    first = await app.client.post("/v1/chat/completions", json=body, headers=headers)
    second = await app.client.post("/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == second.status_code == 200, first.text
    a, b = first.json(), second.json()
    assert (a["id"], a["choices"]) == (b["id"], b["choices"])
    assert a["choices"][0]["message"]["content"] == "w1 w2"
    assert second.headers["idempotent-replayed"] == "true"
    assert app.model.calls == 1
    stateless = await app.client.post(
        "/v1/chat/completions", json=body, headers={**headers, "X-Agenthost-Stateless": "1"}
    )
    assert stateless.status_code == 422


async def test_a_stream_left_on_a_continue_server_runs_to_its_end() -> None:
    model = GatedModel()
    host = Host(Agent(name="a", model=model), store=MemoryStore(max_messages=None), runs=FAST)
    application = make_app(
        Settings.load({"store": "memory://", "on_disconnect": "continue"}), host=host
    )
    client = LeavingClient({"message": "count 3", "user_id": "u", "stream": True})
    model.release(1)
    await asyncio.wait_for(application(chat_scope(), client.receive, client.send), timeout=20)
    assert client.sent[1]["body"].startswith(b"event: delta\nid: 1\n")
    run_id = dict(client.sent[0]["headers"])[b"x-agenthost-run-id"].decode()
    model.release(2)
    events = [e async for e in host.runner.follow(run_id, after=1)]
    assert [e.data.get("text") for e in events[:-1]] == ["w2 ", "w3"]
    assert events[-1].data["status"] == "completed"
    await host.close()


async def test_a_run_that_publishes_nothing_is_read_when_it_ends(tmp_path: Path) -> None:
    model = GatedModel()
    agent = Agent(name="a", model=model)
    path = tmp_path / "shared.db"

    def host() -> Host:
        locks = FileLockCoordinator(f"{path}.locks")
        return Host(agent, store=SQLiteStore(path), coordinator=locks, runs=FAST)

    one, other = host(), host()
    apps = [make_app(host=h) for h in (one, other)]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t") for a in apps
    ]
    try:
        body = {"message": "count 1", "user_id": "u", "session_id": "plain"}
        call = asyncio.create_task(clients[0].post("/v1/chat", json=body))
        run_id = ""
        deadline = asyncio.get_running_loop().time() + 20
        while not run_id:  # polling until the turn began: its run is stored
            runs = await other.runs(user_id="u", session_id="plain")
            run_id = runs[0].run_id if runs else ""
            assert asyncio.get_running_loop().time() < deadline, "the turn never started"
            await asyncio.sleep(0.01)
        elsewhere = asyncio.create_task(
            clients[1].get(f"/v1/runs/{run_id}/events", headers={"X-User-Id": "u"})
        )  # waits: only the end of such a run is known elsewhere
        model.release(1)
        answered = (await call).json()
        assert answered["reply"] == "w1"
        ((kind, data),) = parse_sse((await elsewhere).text)
        assert kind == "done" and {**data, "approvals": []} == {**answered, "type": "done"}
    finally:
        for client in clients:
            await client.aclose()
        for h in (one, other):
            await h.close()
