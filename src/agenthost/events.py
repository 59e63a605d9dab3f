"""Typed events of a turn, in the order ``Host.stream`` yields them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from agenthost.errors import AgentHostError
from agenthost.messages import ToolCall, Usage

RunStatus = Literal["running", "completed", "failed", "interrupted", "awaiting_approval"]


@dataclass(slots=True)
class RunResult:
    """What a finished turn returns."""

    reply: str
    tenant_id: str
    user_id: str
    session_id: str
    run_id: str
    usage: Usage
    status: RunStatus = "completed"
    approvals: list[ToolCall] = field(default_factory=list)
    agent: str | None = None
    """The agent that ended the turn (after any hand-offs: the session's active agent)."""
    model: str | None = None
    """The model that produced the last reply (a fallback model if the first one failed)."""

    @property
    def text(self) -> str:
        return self.reply

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user_id": self.user_id,
            "session_id": self.session_id,
            "run_id": self.run_id,
            "reply": self.reply,
            "usage": self.usage.to_dict(),
            "status": self.status,
        }
        if self.approvals:
            out["approvals"] = [c.to_dict() for c in self.approvals]
        if self.agent is not None:
            out["agent"] = self.agent
        if self.model is not None:
            out["model"] = self.model
        return out


@dataclass(slots=True)
class Delta:
    """A piece of the reply, and (on a host with several agents) the agent speaking it."""

    type: ClassVar[str] = "delta"
    text: str
    agent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.agent is None:
            return {"type": self.type, "text": self.text}
        return {"type": self.type, "text": self.text, "agent": self.agent}


@dataclass(slots=True)
class ToolCallEvent:
    type: ClassVar[str] = "tool_call"
    call: ToolCall

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.call.to_dict()}


@dataclass(slots=True)
class ToolResultEvent:
    type: ClassVar[str] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.call_id,
            "name": self.name,
            "content": self.content,
            "is_error": self.is_error,
        }


@dataclass(slots=True)
class ApprovalRequired:
    """A tool that needs a human's approval was called; the turn pauses."""

    type: ClassVar[str] = "approval_required"
    call: ToolCall
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "run_id": self.run_id, **self.call.to_dict()}


@dataclass(slots=True)
class Handoff:
    """The session was transferred to another agent; it speaks from here on."""

    type: ClassVar[str] = "handoff"
    source: str
    target: str
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "from": self.source, "to": self.target, "run_id": self.run_id}


@dataclass(slots=True)
class Done:
    type: ClassVar[str] = "done"
    result: RunResult

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.result.to_dict()}


@dataclass(slots=True)
class ErrorEvent:
    """The turn failed; ``error`` is the typed exception ``Host.run`` raises."""

    type: ClassVar[str] = "error"
    error: AgentHostError
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "code": self.error.code,
            "message": self.error.message,
        }


Event = Delta | ToolCallEvent | ToolResultEvent | ApprovalRequired | Handoff | Done | ErrorEvent
