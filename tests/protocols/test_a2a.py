"""The A2A endpoint through the a2a-sdk client (and raw JSON-RPC), against the served app
(in this process; a restart and a second process on one store use real processes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from support.agents import PROTOCOL_AGENT
from support.inprocess import InProcessServer
from support.serve import Server, bearer, sqlite_server, uid

WORKING = TaskState.TASK_STATE_WORKING
COMPLETED = TaskState.TASK_STATE_COMPLETED
CANCELED = TaskState.TASK_STATE_CANCELED
INPUT_REQUIRED = TaskState.TASK_STATE_INPUT_REQUIRED


@asynccontextmanager
async def connect(
    server: Server | InProcessServer, user: str, *, streaming: bool = False, polling: bool = False
) -> AsyncIterator[Client]:
    """An a2a-sdk client, configured from the server's agent card, with ``user``'s key."""
    async with httpx.AsyncClient(headers=bearer(user), timeout=30.0) as http:
        config = ClientConfig(httpx_client=http, streaming=streaming, polling=polling)
        client = await ClientFactory(config).create_from_url(server.url)
        yield client
        await client.close()


def message(text: str, *, context_id: str = "", task_id: str = "") -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
            context_id=context_id,
            task_id=task_id,
        )
    )


async def send(client: Client, text: str, **ids: str) -> Task:
    """SendMessage; the task as the server has it once the response (or stream) is over."""
    events = [e async for e in client.send_message(message(text, **ids))]
    if len(events) == 1:
        assert events[0].HasField("task")
        return events[0].task
    return await client.get_task(GetTaskRequest(id=events[0].task.id))


def reply(task: Task) -> str:
    return "".join(p.text for a in task.artifacts for p in a.parts)


def streamed_reply(events: list[StreamResponse]) -> str:
    return "".join(
        p.text
        for e in events
        if e.HasField("artifact_update")
        for p in e.artifact_update.artifact.parts
    )


def rpc(
    server: Server | InProcessServer, method: str, params: Any, *, user: str = "alice", **extra: Any
) -> Any:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params, **extra}
    response = httpx.post(f"{server.url}/a2a", json=body, headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()


def test_agent_card_describes_agent_and_auth(
    keyed_server: InProcessServer, open_server: InProcessServer
) -> None:
    card = httpx.get(f"{keyed_server.url}/.well-known/agent-card.json").json()
    assert card["name"] == "proto-agent"
    assert card["description"].startswith("Remembers your name")
    assert card["version"]
    assert card["capabilities"]["streaming"] is True
    assert card["defaultInputModes"] and card["defaultOutputModes"] == ["text/plain"]
    assert {s["id"] for s in card["skills"]} == {"chat", "tool:transfer"}
    interfaces = {(i["protocolBinding"], i["protocolVersion"]) for i in card["supportedInterfaces"]}
    assert interfaces == {("JSONRPC", "1.0"), ("JSONRPC", "0.3")}
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{keyed_server.url}/a2a"}
    assert card["url"] == f"{keyed_server.url}/a2a" and card["protocolVersion"] == "0.3"
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "bearer"
    assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
    open_card = httpx.get(f"{open_server.url}/.well-known/agent-card.json").json()
    assert "securitySchemes" not in open_card and "securityRequirements" not in open_card


async def test_two_users_two_contexts_each_interleaved(keyed_server: InProcessServer) -> None:
    names = {("alice", 0): "Alice", ("alice", 1): "Ally", ("bob", 0): "Bob", ("bob", 1): "Bobby"}
    async with connect(keyed_server, "alice") as alice, connect(keyed_server, "bob") as bob:
        clients = {"alice": alice, "bob": bob}
        contexts: dict[tuple[str, int], str] = {}
        first: dict[tuple[str, int], Task] = {}
        for slot, name in names.items():  # no contextId: the server makes one per conversation
            task = await send(clients[slot[0]], f"My name is {name}")
            assert task.status.state == COMPLETED and reply(task) == f"Nice to meet you, {name}!"
            contexts[slot], first[slot] = task.context_id, task
        assert len(set(contexts.values())) == 4
        for slot, name in reversed(names.items()):
            task = await send(clients[slot[0]], "What is my name?", context_id=contexts[slot])
            assert (task.context_id, reply(task)) == (contexts[slot], f"Your name is {name}.")
            assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT]

        # bob naming alice's context reaches his own, new session: he is not remembered
        task = await send(bob, "What is my name?", context_id=contexts[("alice", 0)])
        assert reply(task) == "I don't know your name yet."
        # alice's task ids mean nothing to bob
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=first[("alice", 0)].id))
        mine = await alice.get_task(GetTaskRequest(id=first[("alice", 0)].id))
        assert mine.status.state == COMPLETED and reply(mine) == "Nice to meet you, Alice!"

        listed = await alice.list_tasks(
            ListTasksRequest(context_id=contexts[("alice", 1)], include_artifacts=True)
        )
        assert [reply(t) for t in listed.tasks] == ["Your name is Ally.", "Nice to meet you, Ally!"]
        everything = await bob.list_tasks(ListTasksRequest(include_artifacts=True))
        assert {t.context_id for t in everything.tasks} == {
            contexts[("bob", 0)],
            contexts[("bob", 1)],
            contexts[("alice", 0)],  # bob's own session of that name
        }


async def test_streaming_status_and_artifact_updates(keyed_server: InProcessServer) -> None:
    context_id = uid("ctx")
    async with connect(keyed_server, "alice", streaming=True) as alice:
        await send(alice, "My name is Stella", context_id=context_id)
        events = [
            e async for e in alice.send_message(message("What is my name?", context_id=context_id))
        ]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and events[0].task.status.state == WORKING
    assert events[0].task.context_id == context_id
    assert set(kinds[1:-1]) == {"artifact_update"}
    assert events[-2].artifact_update.last_chunk
    assert kinds[-1] == "status_update" and events[-1].status_update.status.state == COMPLETED
    assert streamed_reply(events) == "Your name is Stella."
    task_ids = {events[0].task.id, events[-1].status_update.task_id}
    assert len(task_ids) == 1


async def test_cancel_a_running_task(keyed_server: InProcessServer) -> None:
    context_id = uid("ctx")
    async with connect(keyed_server, "alice", streaming=True) as alice:
        stream = alice.send_message(message("slow thoughts", context_id=context_id))
        opening = await anext(stream)
        task_id = opening.task.id
        progress = await anext(stream)  # the model has started: "thinking..."
        assert progress.artifact_update.artifact.parts[0].text == "thinking..."

        canceled = await alice.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == CANCELED
        rest = [e async for e in stream]
        assert rest[-1].status_update.status.state == CANCELED

        again = await alice.get_task(GetTaskRequest(id=task_id))
        assert again.status.state == CANCELED and reply(again) == "thinking..."
        assert again.status.message.parts[0].text == "canceled by the client"
        with pytest.raises(TaskNotCancelableError):
            await alice.cancel_task(CancelTaskRequest(id=task_id))
        # the session stays usable: the interrupted turn was closed in the store
        assert reply(await send(alice, "hello", context_id=context_id)) == "You said: hello"
    async with httpx.AsyncClient(base_url=keyed_server.url, headers=bearer("alice")) as http:
        response = await http.get(f"/v1/sessions/{context_id}/messages")
    messages = response.json()["messages"]
    assert messages[1]["meta"] == {"status": "interrupted", "error": "canceled by the client"}


async def test_return_immediately_then_subscribe(keyed_server: InProcessServer) -> None:
    async with (
        connect(keyed_server, "alice", polling=True) as poller,
        connect(keyed_server, "alice", streaming=True) as alice,
    ):
        task = await send(poller, "slow start")
        assert task.status.state == WORKING
        resubscribed = alice.subscribe(SubscribeToTaskRequest(id=task.id))
        snapshot = await anext(resubscribed)
        assert snapshot.task.id == task.id
        async with connect(keyed_server, "bob") as bob:
            with pytest.raises(TaskNotFoundError):
                await bob.cancel_task(CancelTaskRequest(id=task.id))
        await alice.cancel_task(CancelTaskRequest(id=task.id))
        rest = [e async for e in resubscribed]
        assert rest[-1].status_update.status.state == CANCELED
        with pytest.raises(UnsupportedOperationError):  # nothing left to follow
            [e async for e in alice.subscribe(SubscribeToTaskRequest(id=task.id))]


async def test_task_from_another_context_is_rejected(keyed_server: InProcessServer) -> None:
    async with connect(keyed_server, "alice") as alice, connect(keyed_server, "bob") as bob:
        one = await send(alice, "hello", context_id=uid("ctx"))
        other_context = uid("ctx")
        await send(alice, "hi", context_id=other_context)
        with pytest.raises(TaskNotFoundError):
            await send(alice, "more", context_id=other_context, task_id=one.id)
        with pytest.raises(TaskNotFoundError):
            await send(bob, "more", task_id=one.id)
        with pytest.raises(UnsupportedOperationError):  # finished: continue in the context
            await send(alice, "more", context_id=one.context_id, task_id=one.id)


async def test_input_required_until_approved(keyed_server: InProcessServer) -> None:
    async with connect(keyed_server, "alice") as alice:
        asked = await send(alice, '/tool transfer {"amount": 5, "to": "bob"}')
        assert asked.status.state == INPUT_REQUIRED
        note = asked.status.message
        assert note.role == Role.ROLE_AGENT and "transfer" in note.parts[0].text
        fetched = await alice.get_task(GetTaskRequest(id=asked.id))
        assert fetched.status.state == INPUT_REQUIRED
        done = await send(alice, "yes", context_id=asked.context_id, task_id=asked.id)
        assert done.id == asked.id and done.status.state == COMPLETED
        assert reply(done) == "transfer returned: sent 5 to bob"


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Server]:
    with sqlite_server(tmp_path, PROTOCOL_AGENT, keyed=True) as server:
        yield server


async def test_get_task_after_restart(restartable: Server) -> None:
    async with connect(restartable, "alice") as alice:
        task = await send(alice, "My name is Rita")
    restartable.restart()
    async with connect(restartable, "alice") as alice, connect(restartable, "bob") as bob:
        again = await alice.get_task(GetTaskRequest(id=task.id))
        assert (again.context_id, again.status.state) == (task.context_id, COMPLETED)
        assert reply(again) == "Nice to meet you, Rita!"
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=task.id))
        follow_up = await send(alice, "What is my name?", context_id=task.context_id)
        assert reply(follow_up) == "Your name is Rita."


async def test_get_task_from_another_process(restartable: Server, tmp_path: Path) -> None:
    other = Server(restartable.args, tmp_path / "other.log", restartable.env, restartable.agent)
    with other:
        async with connect(restartable, "alice") as alice:
            task = await send(alice, "My name is Otto")
        async with connect(other, "alice") as alice_elsewhere, connect(other, "bob") as bob:
            seen = await alice_elsewhere.get_task(GetTaskRequest(id=task.id))
            assert (seen.status.state, reply(seen)) == (COMPLETED, "Nice to meet you, Otto!")
            listed = await alice_elsewhere.list_tasks(ListTasksRequest(context_id=task.context_id))
            assert [t.id for t in listed.tasks] == [task.id]
            with pytest.raises(TaskNotFoundError):
                await bob.get_task(GetTaskRequest(id=task.id))


async def test_a_dropped_stream_does_not_stop_the_task(keyed_server: InProcessServer) -> None:
    async with connect(keyed_server, "alice", streaming=True) as alice:
        stream = alice.send_message(message("slow and steady"))
        task_id = (await anext(stream)).task.id
        await anext(stream)  # "thinking...": the turn runs
        await stream.aclose()  # the client goes away
        follow = alice.subscribe(SubscribeToTaskRequest(id=task_id))
        snapshot = await anext(follow)  # only a running task can be followed
        assert snapshot.task.status.state == WORKING and reply(snapshot.task) == "thinking..."
        await alice.cancel_task(CancelTaskRequest(id=task_id))
        assert [e async for e in follow][-1].status_update.status.state == CANCELED


def test_v03_method_names(keyed_server: InProcessServer) -> None:
    v03_message = {
        "kind": "message",
        "role": "user",
        "messageId": str(uuid.uuid4()),
        "parts": [{"kind": "text", "text": "My name is Vera"}],
    }
    sent = rpc(keyed_server, "message/send", {"message": v03_message})["result"]
    assert sent["kind"] == "task" and sent["status"]["state"] == "completed"
    got = rpc(keyed_server, "tasks/get", {"id": sent["id"]})["result"]
    assert got["artifacts"][0]["parts"][0]["text"] == "Nice to meet you, Vera!"
    follow = {**v03_message, "messageId": str(uuid.uuid4()), "contextId": sent["contextId"]}
    follow["parts"] = [{"kind": "text", "text": "What is my name?"}]
    body = {"jsonrpc": "2.0", "id": 8, "method": "message/stream", "params": {"message": follow}}
    with httpx.stream(
        "POST", f"{keyed_server.url}/a2a", json=body, headers=bearer("alice")
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [
            json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")
        ]
    results = [f["result"] for f in frames]
    assert results[0]["kind"] == "task"
    assert results[-1]["kind"] == "status-update" and results[-1]["final"] is True
    assert results[-1]["status"]["state"] == "completed"
    text = "".join(
        p["text"] for r in results if r["kind"] == "artifact-update" for p in r["artifact"]["parts"]
    )
    assert text == "Your name is Vera."
    canceled = rpc(keyed_server, "tasks/cancel", {"id": sent["id"]})
    assert canceled["error"]["code"] == -32002  # already completed: not cancelable


def test_jsonrpc_errors(keyed_server: InProcessServer) -> None:
    url = f"{keyed_server.url}/a2a"

    def raw(content: bytes, user: str = "alice") -> dict[str, Any]:
        headers = {**bearer(user), "Content-Type": "application/json"}
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def code(reply: dict[str, Any]) -> int:
        value: int = reply["error"]["code"]
        return value

    assert code(raw(b"{not json")) == -32700
    assert code(raw(b"[]")) == -32600
    assert code(raw(b'{"jsonrpc": "1.0", "id": 1, "method": "GetTask", "params": {}}')) == -32600
    assert code(raw(b'{"jsonrpc": "2.0", "id": 1, "params": {}}')) == -32600
    assert code(rpc(keyed_server, "DoMagic", {})) == -32601
    assert code(rpc(keyed_server, "tasks/magic", {})) == -32601
    assert code(rpc(keyed_server, "GetTask", {"id": 5})) == -32602
    assert code(rpc(keyed_server, "GetTask", {"id": "x", "historyLength": -1})) == -32602
    assert code(rpc(keyed_server, "SendMessage", {})) == -32602
    assert (
        code(
            rpc(
                keyed_server,
                "SendMessage",
                {"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}},
            )
        )
        == -32602
    )
    invalid = rpc(keyed_server, "tasks/get", {"idx": "x"})
    assert code(invalid) == -32602 and "'x'" not in invalid["error"]["message"]
    bad_context = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    bad_context["contextId"] = "x" * 300
    assert code(rpc(keyed_server, "SendMessage", {"message": bad_context})) == -32602
    file_part = {"messageId": "m", "role": "ROLE_USER", "parts": [{"url": "https://x/y.png"}]}
    assert code(rpc(keyed_server, "SendMessage", {"message": file_part})) == -32005
    assert code(rpc(keyed_server, "GetTask", {"id": "run_unknown"})) == -32001
    assert code(rpc(keyed_server, "tasks/get", {"id": "run_unknown"})) == -32001
    assert code(rpc(keyed_server, "CancelTask", {"id": "run_unknown"})) == -32001
    assert code(rpc(keyed_server, "SubscribeToTask", {"id": "run_unknown"})) == -32001

    anonymous = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    forged = httpx.post(url, json={}, headers={"Authorization": "Bearer nope"})
    assert forged.status_code == 401
