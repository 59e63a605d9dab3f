"""``agenthost.events``: each event's wire form (what SSE frames, run logs and the A2A and
OpenAI faces carry), and a turn's events in the order ``Host.stream`` yields them."""

from __future__ import annotations

import orjson

from agenthost import Agent, Host
from agenthost.errors import TurnTimeout
from agenthost.events import (
    ApprovalRequired,
    Delta,
    Done,
    ErrorEvent,
    Handoff,
    RunResult,
    ToolCallEvent,
    ToolResultEvent,
)
from agenthost.messages import ToolCall, Usage

CALL = ToolCall("call_1", "lookup", '{"q": "tea"}')


def test_every_event_has_a_type_and_a_json_form() -> None:
    result = RunResult("hi", "t", "u", "s", "run_1", Usage(1, 2, 1), agent="a", model="m")
    events = [
        (Delta("hel"), {"type": "delta", "text": "hel"}),
        (Delta("lo", agent="billing"), {"type": "delta", "text": "lo", "agent": "billing"}),
        (ToolCallEvent(CALL), {"type": "tool_call", **CALL.to_dict()}),
        (
            ToolResultEvent("call_1", "lookup", "42", is_error=False),
            {
                "type": "tool_result",
                "id": "call_1",
                "name": "lookup",
                "content": "42",
                "is_error": False,
            },
        ),
        (
            ApprovalRequired(CALL, "run_1"),
            {"type": "approval_required", "run_id": "run_1", **CALL.to_dict()},
        ),
        (
            Handoff("triage", "billing", "run_1"),
            {"type": "handoff", "from": "triage", "to": "billing", "run_id": "run_1"},
        ),
        (Done(result), {"type": "done", **result.to_dict()}),
    ]
    for event, expected in events:
        assert event.to_dict() == expected
        assert orjson.loads(orjson.dumps(event.to_dict())) == expected  # JSON as it is
    error = ErrorEvent(TurnTimeout("too slow"), run_id="run_1").to_dict()
    assert error == {
        "type": "error",
        "run_id": "run_1",
        "code": "turn_timeout",
        "message": "too slow",
    }


def test_a_result_leaves_out_what_it_does_not_have() -> None:
    plain = RunResult("hi", "t", "u", "s", "run_1", Usage()).to_dict()
    assert set(plain) == {"user_id", "session_id", "run_id", "reply", "usage", "status"}
    assert plain["status"] == "completed"
    paused = RunResult("", "t", "u", "s", "r", Usage(), "awaiting_approval", [CALL]).to_dict()
    assert paused["approvals"] == [CALL.to_dict()]


async def test_a_turn_streams_deltas_then_done_and_done_is_what_run_returns() -> None:
    async with Host(Agent(model="offline")) as host:
        events = [event async for event in host.stream("My name is Ada", user_id="ada")]
        assert [type(e) for e in events] == [Delta, Done]
        done = events[-1]
        assert isinstance(done, Done)
        assert "".join(e.text for e in events if isinstance(e, Delta)) == done.result.reply
        again = await host.run("What is my name?", user_id="ada")
        assert again.to_dict()["reply"] == again.reply == "Your name is Ada."
