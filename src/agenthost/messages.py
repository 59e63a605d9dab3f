"""The message format every stored history round-trips through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Role = Literal["user", "assistant", "tool", "system"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to run one tool; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.requests += other.requests

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }


@dataclass(slots=True)
class Message:
    """One entry of a session's append-only log.

    ``seq`` is assigned by the host when the message is stored (1, 2, 3, ... per
    session). ``meta`` carries markers such as ``{"status": "failed"}`` on the
    message that closes a turn the model could not finish.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    run_id: str | None = None
    seq: int = 0
    created_at: float = 0.0
    meta: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "role": self.role,
            "content": self.content,
            "run_id": self.run_id,
            "created_at": self.created_at,
        }
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        calls = data.get("tool_calls") or ()
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            tool_calls=tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in calls),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            run_id=data.get("run_id"),
            seq=int(data.get("seq", 0)),
            created_at=float(data.get("created_at", 0.0)),
            meta=data.get("meta"),
        )


def encode_message(message: Message) -> bytes:
    return orjson.dumps(message.to_dict())


def decode_message(data: bytes | str) -> Message:
    return Message.from_dict(orjson.loads(data))


def encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def decode_json(data: bytes | str | None, default: Any) -> Any:
    if data is None or data == "" or data == b"":
        return default
    return orjson.loads(data)


def closing_messages(
    open_calls: dict[str, str], run_id: str, status: str, error: str | None, partial: str
) -> list[Message]:
    """Tool results for calls left unanswered, then the assistant message that ends the turn."""
    note = f"not run: the turn was {status}"
    out = [
        Message(
            "tool", note, tool_call_id=call_id, name=name, run_id=run_id, meta={"status": status}
        )
        for call_id, name in open_calls.items()
    ]
    meta: dict[str, Any] = {"status": status}
    if error:
        meta["error"] = error
    out.append(Message("assistant", partial, run_id=run_id, meta=meta))
    return out


def open_calls_in(window: Any) -> dict[str, str]:
    """Tool calls in a window's tail that have no result yet (crash recovery)."""
    calls: dict[str, str] = {}
    for message in window:
        if message.role == "assistant":
            calls = {c.id: c.name for c in message.tool_calls}
        elif message.role == "tool":
            calls.pop(message.tool_call_id or "", None)
        else:
            calls = {}
    return calls
