"""``agenthost.messages``: the stored message format round-trips exactly, usage adds up, and
a turn cut short is closed well-formed (every open tool call answered, then the assistant)."""

from __future__ import annotations

from agenthost.messages import (
    Message,
    ToolCall,
    Usage,
    closing_messages,
    decode_json,
    decode_message,
    encode_json,
    encode_message,
    open_calls_in,
)

CALL = ToolCall("call_1", "lookup", '{"topic": "tea"}')


def test_every_field_round_trips_through_the_stored_form() -> None:
    full = Message(
        "assistant",
        '你好 \u2028 "quoted"',
        tool_calls=(CALL, ToolCall("call_2", "transfer", "{}")),
        run_id="run_1",
        seq=7,
        created_at=1.5,
        meta={"status": "interrupted", "error": "gone"},
    )
    tool = Message("tool", "result", tool_call_id="call_1", name="lookup", seq=8)
    for message in (full, tool, Message("user", "hi")):
        assert decode_message(encode_message(message)) == message
        assert decode_message(encode_message(message).decode()) == message


def test_the_dict_form_leaves_out_what_is_not_set() -> None:
    assert Message("user", "hi", seq=1).to_dict() == {
        "seq": 1,
        "role": "user",
        "content": "hi",
        "run_id": None,
        "created_at": 0.0,
    }
    assert Message.from_dict({"role": "assistant", "content": None}) == Message("assistant", "")


def test_usage_adds_and_totals() -> None:
    usage = Usage(3, 4, 1)
    usage.add(Usage(10, 1, 2))
    assert usage.to_dict() == {
        "input_tokens": 13,
        "output_tokens": 5,
        "total_tokens": 18,
        "requests": 3,
    }


def test_json_helpers_default_on_nothing() -> None:
    assert decode_json(None, {}) == {} and decode_json("", []) == [] and decode_json(b"", 0) == 0
    assert decode_json(encode_json({"a": [1, "é"]}), None) == {"a": [1, "é"]}


def test_open_calls_are_those_of_the_last_assistant_message_without_a_result() -> None:
    asked = Message("assistant", "", tool_calls=(CALL, ToolCall("call_2", "transfer", "{}")))
    answered = Message("tool", "tea is hot", tool_call_id="call_1", name="lookup")
    assert open_calls_in([Message("user", "q"), asked, answered]) == {"call_2": "transfer"}
    assert open_calls_in([asked, answered, Message("user", "next")]) == {}
    assert open_calls_in([]) == {}


def test_closing_messages_answer_open_calls_then_end_the_turn() -> None:
    closing = closing_messages({"call_2": "transfer"}, "run_9", "interrupted", "gone", "par")
    assert [(m.role, m.tool_call_id, m.name) for m in closing] == [
        ("tool", "call_2", "transfer"),
        ("assistant", None, None),
    ]
    assert closing[0].content == "not run: the turn was interrupted"
    assert closing[1].content == "par" and closing[1].meta == {
        "status": "interrupted",
        "error": "gone",
    }
    assert all(m.run_id == "run_9" for m in closing)
    [only] = closing_messages({}, "run_9", "failed", None, "")
    assert only.meta == {"status": "failed"}
