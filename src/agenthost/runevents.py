"""A run's events as records with ids: what a run log stores and what followers read.

A turn yields typed events (:mod:`agenthost.events`). A published run stores
each as its ``to_dict()`` payload under a seq (1, 2, 3, ...): the SSE ``id``
a client resumes from. :func:`decode` turns a payload back into the typed event,
so every face (the own API, OpenAI-compatible, A2A) renders a run the same way
whether it is running in this process or read from the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from agenthost.errors import AgentHostError
from agenthost.events import (
    ApprovalRequired,
    Delta,
    Done,
    ErrorEvent,
    Event,
    Handoff,
    RunResult,
    ToolCallEvent,
    ToolResultEvent,
)
from agenthost.messages import Message, ToolCall, Usage
from agenthost.stores.base import PendingApproval, RunRecord

TERMINAL = frozenset({"done", "error"})


class RunEvent(NamedTuple):
    """One event of a run: its seq in the run's log and its payload (``{"type": ...}``)."""

    seq: int
    data: dict[str, Any]

    @property
    def type(self) -> str:
        kind: str = self.data.get("type", "")
        return kind

    @property
    def terminal(self) -> bool:
        """A ``done`` or ``error``: the last event of the run (or of its phase before an
        approval; a run continued after one goes on with the next seq)."""
        return self.type in TERMINAL

    def event(self) -> Event | None:
        """The typed event (None for a type this version does not know)."""
        return decode(self.data)


def _error_classes() -> dict[str, type[AgentHostError]]:
    found: dict[str, type[AgentHostError]] = {}
    pending: list[type[AgentHostError]] = [AgentHostError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_of(code: str, message: str) -> AgentHostError:
    """The typed error for a stored ``{"code", "message"}``."""
    cls = _error_classes().get(code)
    if cls is None:
        error = AgentHostError(message)
        error.code = code
        return error
    try:
        return cls(message)
    except TypeError:  # a class whose constructor wants more than a message
        error = cls.__new__(cls)
        AgentHostError.__init__(error, message)
        return error


def _usage(data: dict[str, Any] | None) -> Usage:
    data = data or {}
    return Usage(data.get("input_tokens", 0), data.get("output_tokens", 0), data.get("requests", 0))


def _call(data: dict[str, Any]) -> ToolCall:
    return ToolCall(data["id"], data["name"], data.get("arguments", ""))


def result_of(data: dict[str, Any], *, tenant_id: str) -> RunResult:
    """The :class:`RunResult` of a ``done`` payload (which carries no tenant)."""
    return RunResult(
        data.get("reply", ""),
        tenant_id,
        data["user_id"],
        data["session_id"],
        data["run_id"],
        _usage(data.get("usage")),
        data.get("status", "completed"),
        [_call(c) for c in data.get("approvals", ())],
        data.get("agent"),
        data.get("model"),
    )


def decode(data: dict[str, Any], *, tenant_id: str = "") -> Event | None:
    kind = data.get("type")
    if kind == "delta":
        return Delta(data.get("text", ""), data.get("agent"))
    if kind == "tool_call":
        return ToolCallEvent(_call(data))
    if kind == "tool_result":
        return ToolResultEvent(
            data["id"], data["name"], data["content"], data.get("is_error", False)
        )
    if kind == "approval_required":
        return ApprovalRequired(_call(data), data["run_id"])
    if kind == "handoff":
        return Handoff(data["from"], data["to"], data["run_id"])
    if kind == "done":
        return Done(result_of(data, tenant_id=tenant_id))
    if kind == "error":
        return ErrorEvent(error_of(data["code"], data["message"]), data.get("run_id"))
    return None


def closing(
    run: RunRecord, messages: Sequence[Message], pending: Sequence[PendingApproval] = ()
) -> dict[str, Any]:
    """The terminal payload of a finished run, rebuilt from its stored record and messages
    (for a run that published no events, or whose process died before publishing its end)."""
    if run.status == "failed":
        why = run.error or "the run failed"
        return ErrorEvent(error_of("model_error", why), run.run_id).to_dict()
    reply, meta = "", {}
    for message in reversed(messages):
        if message.run_id == run.run_id and message.role == "assistant":
            reply, meta = message.content, message.meta or {}
            break
    key = run.key
    approvals = [p.call for p in pending if p.run_id == run.run_id]
    status = "interrupted" if run.status == "running" else run.status
    result = RunResult(
        reply,
        key.tenant_id,
        key.user_id,
        key.session_id,
        run.run_id,
        run.usage,
        status,
        approvals,
        meta.get("agent"),
        meta.get("model"),
    )
    data = Done(result).to_dict()
    if status == "interrupted":
        data["error"] = run.error or "the process running it stopped"
    return data
