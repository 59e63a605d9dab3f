"""Unit tests of the Chat Completions mapping: conversations, reconciliation, stream chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agenthost.errors import InvalidInput, SessionBusy
from agenthost.events import Delta, Done, ErrorEvent, Event, RunResult, ToolCallEvent
from agenthost.messages import Message, ToolCall, Usage
from agenthost.protocols import openai_chat as oc


def convo(*pairs: tuple[str, str]) -> list[Message]:
    return [Message(role, text) for role, text in pairs]  # type: ignore[arg-type]


def stored_turn(run: str, user: str, *replies: str, tool: bool = False) -> list[Message]:
    """One stored run: the user message, optional tool step, the replies."""
    out = [Message("user", user, run_id=run)]
    if tool:
        call = ToolCall("c1", "lookup", "{}")
        out += [
            Message("assistant", "", (call,), run_id=run),
            Message("tool", "notes", tool_call_id="c1", name="lookup", run_id=run),
        ]
    out += [Message("assistant", text, run_id=run) for text in replies]
    return out


def request(**fields: Any) -> oc.ChatCompletionRequest:
    body = {"model": "agent", "messages": [{"role": "user", "content": "hi"}], **fields}
    return oc.ChatCompletionRequest.model_validate(body)


# -- the client's messages -----------------------------------------------------------------


def test_to_messages_keeps_text_and_maps_developer_to_system() -> None:
    body = request(
        messages=[
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    )
    messages = oc.to_messages(body.messages)
    assert [(m.role, m.content) for m in messages] == [("system", "be brief"), ("user", "a\nb")]


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [{"role": "tool", "content": "1", "tool_call_id": "c"}, {"role": "user", "content": "hi"}],
        [{"role": "assistant", "tool_calls": [{"id": "c"}]}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    ],
)
def test_to_messages_refuses_what_it_cannot_honour(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidInput):
        oc.to_messages(request(messages=messages).messages)


def test_check_request_and_sampling_config() -> None:
    with pytest.raises(InvalidInput, match="n must be 1"):
        oc.check_request(request(n=3))
    with pytest.raises(InvalidInput, match="client-side tools"):
        oc.check_request(request(tools=[{"type": "function", "function": {"name": "f"}}]))
    oc.check_request(request(n=1, tools=[]))
    assert oc.sampling_config(request(temperature=0.2, max_tokens=5, max_completion_tokens=9)) == {
        "temperature": 0.2,
        "max_tokens": 9,
    }
    assert oc.sampling_config(request(top_p=0.5, max_tokens=5)) == {"top_p": 0.5, "max_tokens": 5}


def test_session_from_header_then_metadata() -> None:
    assert oc.session_from("h", {"session_id": "m"}) == "h"
    assert oc.session_from(None, {"session_id": "m"}) == "m"
    assert oc.session_from(None, None) is None
    with pytest.raises(InvalidInput):
        oc.session_from(None, {"session_id": 5})


# -- reconciling with the stored history ---------------------------------------------------


def test_transcript_hides_tool_traffic_and_accepts_streamed_replies() -> None:
    history = stored_turn("r1", "look it up", "Let me see. ", "Found it.", tool=True)
    assert oc.transcript(history) == [
        ("user", frozenset({"look it up"})),
        ("assistant", frozenset({"Found it.", "Let me see. Found it."})),
    ]


def test_transcript_merges_users_around_a_turn_without_a_reply() -> None:
    history = [
        *stored_turn("r1", "first"),  # failed before any reply
        *stored_turn("r2", "second", "ok"),
    ]
    assert oc.transcript(history) == [
        ("user", frozenset({"first\n\nsecond"})),
        ("assistant", frozenset({"ok"})),
    ]


def test_reconcile_new_session_and_matching_history() -> None:
    first = oc.reconcile(convo(("system", "x"), ("user", "hello")), [])
    assert (first.text, first.diverged, first.header) == ("hello", False, "match")
    stored = stored_turn("r1", "hello", "hi there")
    client = convo(("user", "hello"), ("assistant", "hi there"), ("user", "a"), ("user", "b"))
    plan = oc.reconcile(client, stored)
    assert (plan.text, plan.header) == ("a\n\nb", "match")
    # the joined user message matches the client's separate ones next time
    stored += stored_turn("r2", "a\n\nb", "noted")
    client += convo(("assistant", "noted"), ("user", "c"))
    assert oc.reconcile(client, stored).header == "match"


@pytest.mark.parametrize(
    "client",
    [
        [("user", "hello"), ("assistant", "something else"), ("user", "next")],  # edited reply
        [("user", "next")],  # a fresh chat in a used session
        [
            ("user", "hello"),
            ("assistant", "hi there"),
            ("user", "more"),
            ("assistant", "x"),
            ("user", "n"),
        ],
    ],
)
def test_reconcile_flags_divergence(client: list[tuple[str, str]]) -> None:
    plan = oc.reconcile(convo(*client), stored_turn("r1", "hello", "hi there"))
    assert plan.diverged and plan.header == "diverged" and plan.text == client[-1][1]


def test_reconcile_needs_a_non_empty_user_message() -> None:
    with pytest.raises(InvalidInput):
        oc.reconcile(convo(("user", "  ")), [])


# -- responses -----------------------------------------------------------------------------


def result(reply: str = "Hi!", **fields: Any) -> RunResult:
    usage = Usage(input_tokens=3, output_tokens=2, requests=1)
    return RunResult(reply, "t", "u", "s", "run_1", usage, **fields)


def test_completion_shape() -> None:
    body = oc.completion(
        result(approvals=[ToolCall("c1", "transfer", "{}")], status="awaiting_approval"),
        completion_id="chatcmpl-1",
        created=5,
        model="agent",
        stateless=False,
    )
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "Hi!"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert body["agenthost"]["status"] == "awaiting_approval"
    assert body["agenthost"]["approvals"][0]["name"] == "transfer"
    stateless = oc.completion(result(), completion_id="c", created=5, model="a", stateless=True)
    assert "run_id" not in stateless["agenthost"]


async def events(*items: Event | Exception) -> AsyncIterator[Event]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def decode(frames: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        payload = frame[6:-2].decode()
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


async def test_frames_role_deltas_finish_usage_done() -> None:
    writer = oc.ChunkWriter("chatcmpl-1", 5, "agent", include_usage=True, stateless=False)
    stream = events(
        Delta("Hi"), ToolCallEvent(ToolCall("c", "f", "{}")), Delta("!"), Done(result())
    )
    chunks = decode([f async for f in writer.frames(stream)])
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hi", "!"]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["agenthost"]["run_id"] == "run_1"
    assert all(c["usage"] is None for c in chunks[:4])
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["total_tokens"] == 5
    assert chunks[5] == "[DONE]"


async def test_frames_without_usage_and_with_errors() -> None:
    writer = oc.ChunkWriter("c", 5, "agent", include_usage=False, stateless=True)
    chunks = decode([f async for f in writer.frames(events(Delta("a"), Done(result())))])
    assert "usage" not in chunks[0] and chunks[-1] == "[DONE]" and len(chunks) == 4
    failed = events(Delta("a"), ErrorEvent(SessionBusy("busy"), "run_1"))
    chunks = decode([f async for f in writer.frames(failed)])
    assert chunks[-1] == {"error": {"code": "session_busy", "message": "busy"}}
    raised = events(Delta("a"), SessionBusy("later"))
    chunks = decode([f async for f in writer.frames(raised)])
    assert chunks[-1]["error"]["message"] == "later"


async def test_frames_raise_errors_before_the_first_chunk() -> None:
    writer = oc.ChunkWriter("c", 5, "agent", include_usage=False, stateless=True)
    frames = writer.frames(events(InvalidInput("bad")))
    with pytest.raises(InvalidInput):
        await anext(frames)


async def test_frames_close_the_turn_when_closed_early() -> None:
    closed: list[bool] = []

    async def turn() -> AsyncIterator[Event]:
        try:
            yield Delta("a")
            yield Delta("b")
        finally:
            closed.append(True)

    writer = oc.ChunkWriter("c", 5, "agent", include_usage=False, stateless=True)
    frames = writer.frames(turn())
    await anext(frames)
    await frames.aclose()  # type: ignore[attr-defined]
    assert closed == [True]


def test_models_list() -> None:
    assert oc.models_list(["agent"]) == {
        "object": "list",
        "data": [{"id": "agent", "object": "model", "created": 0, "owned_by": "agenthost"}],
    }
