"""Unit tests of the A2A mapping (runs -> tasks, parts -> text, the card) and the endpoint's
version and params handling; and a shutdown that interrupts running tasks cleanly."""

from __future__ import annotations

import json
from typing import Any, get_args

import httpx
import pytest
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import Message as A2AMessage
from a2a.types import Part, Role, TaskState
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    TaskNotFoundError,
)

from agenthost import Agent, Host
from agenthost.errors import InvalidInput, ModelError, NotFound, QuotaExceeded
from agenthost.events import RunStatus
from agenthost.messages import Message
from agenthost.protocols import a2a_mapping as am
from agenthost.server import create_app
from agenthost.server.a2a import _version
from agenthost.server.a2a_input import Screened, screen
from agenthost.settings import Settings
from support.agents import protocol_agent


def user(*parts: Part, role: Role = Role.ROLE_USER) -> A2AMessage:
    return A2AMessage(message_id="m", role=role, parts=list(parts))


def test_every_run_status_has_a_task_state() -> None:
    assert set(am.STATE_OF_RUN) == set(get_args(RunStatus))
    assert am.STATE_OF_RUN["interrupted"] == TaskState.TASK_STATE_CANCELED
    assert am.STATE_OF_RUN["awaiting_approval"] == TaskState.TASK_STATE_INPUT_REQUIRED


def test_message_text_from_text_and_data_parts() -> None:
    message = user(Part(text="hi"), am.data_part({"n": [1, "x", None, True]}))
    assert am.message_text(message) == 'hi\n{"n": [1.0, "x", null, true]}'  # as protobuf has it
    # the data as the client sent it, where it is the same data: numbers keep their form
    assert (
        am.message_text(message, {1: {"n": [1, "x", None, True]}})
        == 'hi\n{"n": [1, "x", null, true]}'
    )
    big = 2**60 + 1  # a double cannot hold it
    exact = am.message_text(user(am.data_part({"big": big})), {0: {"big": big}})
    assert exact == f'{{"big": {big}}}'
    # what the client sent is used only where it is the data protobuf parsed
    for other in ({"n": [2, "x", None, True]}, {"n": [1, "x", None, 1]}, {"m": 1}, [1]):
        assert am.message_text(message, {1: other}) == 'hi\n{"n": [1.0, "x", null, true]}'
    with pytest.raises(ContentTypeNotSupportedError):
        am.message_text(user(Part(url="https://example.com/a.png")))
    with pytest.raises(InvalidParamsError):
        am.message_text(user(Part(text="  ")))
    with pytest.raises(InvalidParamsError):
        am.message_text(user(Part(text="hi"), role=Role.ROLE_AGENT))


@pytest.mark.parametrize(
    ("part", "answer"),
    [
        (Part(text="Yes."), True),
        (Part(text="approve"), True),
        (Part(text="no"), False),
        (am.data_part({"approved": False}), False),
        (am.data_part({"approved": True}), True),
    ],
)
def test_approval_answers(part: Part, answer: bool) -> None:
    assert am.approval_answer(user(part)) is answer


def test_approval_needs_a_clear_answer() -> None:
    with pytest.raises(InvalidParamsError, match="yes"):
        am.approval_answer(user(Part(text="maybe later")))


def test_task_from_stored_messages() -> None:
    messages = [
        Message("user", "earlier", run_id="run_0", seq=1),
        Message("assistant", "old", run_id="run_0", seq=2),
        Message("user", "now", run_id="run_1", seq=3),
        Message("assistant", "Part one. ", run_id="run_1", seq=4),
        Message("tool", "42", tool_call_id="c", run_id="run_1", seq=5),
        Message("assistant", "Part two.", run_id="run_1", seq=6),
    ]
    history = am.history_of("run_1", messages, "ctx")
    assert [(m.role, m.parts[0].text, m.message_id) for m in history] == [
        (Role.ROLE_USER, "now", "run_1-3"),
        (Role.ROLE_AGENT, "Part one. ", "run_1-4"),
        (Role.ROLE_AGENT, "Part two.", "run_1-6"),
    ]
    reply = am.reply_of("run_1", messages)
    assert reply == "Part one. Part two."
    task = am.build_task(
        task_id="run_1",
        context_id="ctx",
        state=TaskState.TASK_STATE_COMPLETED,
        at=1.5,
        history=history,
        reply=reply,
        history_length=1,
    )
    assert (task.id, task.context_id) == ("run_1", "ctx")
    assert task.artifacts[0].artifact_id == "reply" and len(task.history) == 1
    assert task.status.timestamp.ToNanoseconds() == 1_500_000_000
    empty = am.build_task(
        task_id="t", context_id="c", state=1, at=0, history=history, history_length=0
    )
    assert not empty.history and not empty.artifacts


def test_pending_note_lists_the_calls() -> None:
    pending = [{"id": "c1", "name": "transfer", "arguments": "{}", "run_id": "run_1"}]
    note = am.pending_note(pending, task_id="run_1", context_id="ctx")
    assert note.role == Role.ROLE_AGENT and "transfer" in note.parts[0].text
    assert note.parts[1].data.struct_value["approvals"][0]["id"] == "c1"


def test_agenthost_errors_become_jsonrpc_errors() -> None:
    assert isinstance(am.to_a2a_error(InvalidInput("x")), InvalidParamsError)
    assert isinstance(am.to_a2a_error(QuotaExceeded("x")), InvalidParamsError)
    assert isinstance(am.to_a2a_error(NotFound("x")), TaskNotFoundError)
    assert isinstance(am.to_a2a_error(ModelError("x")), InternalError)


@pytest.mark.parametrize(("auth", "bearer_format"), [("api-keys", "API key"), ("jwt", "JWT")])
def test_card_security_follows_auth(auth: str, bearer_format: str) -> None:
    card = agent_card_to_dict(
        am.agent_card(protocol_agent, base_url="http://h:1/", version="9", auth=auth)
    )
    scheme = card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]
    assert scheme["bearerFormat"] == bearer_format
    assert card["url"] == "http://h:1/a2a"
    plain = agent_card_to_dict(
        am.agent_card(Agent(), base_url="http://h", version="9", auth="none")
    )
    assert "securitySchemes" not in plain
    assert plain["description"] == "agent: You are a helpful assistant."


@pytest.mark.parametrize(
    ("header", "method", "version"),
    [
        (None, "SendMessage", "1.0"),
        (None, "message/send", "0.3"),
        ("1.0", "message/send", "0.3"),  # the method name decides between the generations
        ("0.3", "GetTask", "1.0"),
        ("1.0.2", "GetTask", "1.0"),
        ("2.0", "GetTask", "2.0"),  # stands, and is refused as unsupported
        (None, None, "1.0"),
    ],
)
def test_version_from_method_name(header: str | None, method: str | None, version: str) -> None:
    assert _version(header, {"method": method}) == version


def test_v03_params_are_invalid_params_without_echo() -> None:
    def screened(body: Any) -> Screened | dict[str, Any]:
        return screen(json.dumps(body).encode())

    body: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tasks/get",
        "params": {"x": "s3cret"},
    }
    error = screened(body)
    assert isinstance(error, dict) and error["id"] == 3 and error["error"]["code"] == -32602
    assert "s3cret" not in str(error)
    good = {"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": "t"}}
    assert isinstance(screened(good), Screened)
    assert isinstance(screened({**body, "method": "GetTask"}), Screened)  # v1.0: the SDK's job
    assert isinstance(screened({**body, "jsonrpc": "1.0"}), Screened)  # envelope: SDK's -32600
    assert isinstance(screened([body]), Screened)


async def test_shutdown_interrupts_running_tasks_and_stores_why() -> None:
    host = Host(protocol_agent)
    app = create_app(Settings.load({"store": "memory://"}), host=host)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "slow one"}]},
            "configuration": {"returnImmediately": True},
        },
    }
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            task = (await client.post("/a2a", json=body)).json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_WORKING"
        first = await anext(host.runner.follow(task["id"]))
        assert first.data == {"type": "delta", "text": "thinking..."}  # the model is mid-turn
        store = host.store
    # the app's lifespan is over: the task was cancelled before the host closed
    await store.open()
    run = await store.get_run(task["id"])
    assert run is not None and (run.status, run.error) == ("interrupted", "the server shut down")
