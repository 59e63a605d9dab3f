"""Agent2Agent (A2A) protocol objects built from agenthost runs, with the a2a-sdk's types.

The mapping:

- ``contextId`` is a ``session_id`` of the authenticated user. Another user's
  context id names that user's own session (a different one, or none yet).
- A task is one run (one turn): the task id is the run id, so a task is as
  durable as the run record, readable after a restart and from any process.
- Task state follows the run status: running -> working, completed ->
  completed, failed -> failed, interrupted -> canceled, awaiting_approval ->
  input-required.
- A task's history is the run's user message and the agent's text replies;
  its one artifact, ``reply``, holds everything the agent said in the run
  (streamed as appended chunks of that artifact).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    HTTPAuthSecurityScheme,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.types import Message as A2AMessage
from a2a.utils.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    TaskNotFoundError,
)

from agenthost.agent import Agent
from agenthost.errors import AgentHostError, InvalidInput, NotFound, QuotaExceeded
from agenthost.events import RunStatus
from agenthost.messages import Message
from agenthost.stores.base import RunRecord

REPLY_ARTIFACT = "reply"
JSONRPC_PATH = "/a2a"
PROTOCOL_VERSIONS = ("1.0", "0.3")
INPUT_MODES = ("text/plain", "application/json")
OUTPUT_MODES = ("text/plain",)
EXTENDED_CARD = False
"""No extended card: GetExtendedAgentCard is then UnsupportedOperationError (spec 3.3.4)."""

STATE_OF_RUN: dict[RunStatus, TaskState] = {
    "running": TaskState.TASK_STATE_WORKING,
    "completed": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "interrupted": TaskState.TASK_STATE_CANCELED,
    "awaiting_approval": TaskState.TASK_STATE_INPUT_REQUIRED,
}
TERMINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)

_YES = frozenset({"yes", "y", "approve", "approved", "ok", "allow", "true"})
_NO = frozenset({"no", "n", "deny", "denied", "reject", "rejected", "false"})


# -- incoming -------------------------------------------------------------------------


def message_text(message: A2AMessage, sent: Mapping[int, Any] | None = None) -> str:
    """The user's input: text parts joined by newlines, data parts as JSON text.

    ``sent`` holds the data parts as the client wrote them in JSON, by part index:
    protobuf's ``Value`` keeps every number as a double (``123`` would reach the
    agent as ``123.0``, ``2**60 + 1`` rounded), so where the client's value is the
    same data, it is the one the agent reads.
    """
    if message.role not in (Role.ROLE_USER, Role.ROLE_UNSPECIFIED):
        raise InvalidParamsError(message="message.role must be ROLE_USER")
    texts: list[str] = []
    for index, part in enumerate(message.parts):
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            data = _plain(part.data)
            if sent and index in sent and _same(sent[index], data):
                data = sent[index]
            texts.append(json.dumps(data, ensure_ascii=False))
        else:
            raise ContentTypeNotSupportedError(
                message="this agent accepts text and data parts, not files"
            )
    text = "\n".join(texts)
    if not text.strip():
        raise InvalidParamsError(message="message has no text")
    return text


def approval_answer(message: A2AMessage) -> bool:
    """A reply to an input-required task: a data part ``{"approved": bool}``, or yes/no text."""
    for part in message.parts:
        if part.WhichOneof("content") == "data":
            value = _plain(part.data)
            if isinstance(value, dict) and isinstance(value.get("approved"), bool):
                return bool(value["approved"])
        elif part.WhichOneof("content") == "text":
            word = part.text.strip().strip(".!").lower()
            if word in _YES:
                return True
            if word in _NO:
                return False
    raise InvalidParamsError(
        message='the task waits for approval: answer "yes" or "no" (or data {"approved": bool})'
    )


def message_meta(message: A2AMessage) -> dict[str, Any] | None:
    """What the stored user message keeps of the A2A message: the creator's id."""
    return {"message_id": message.message_id} if message.message_id else None


def _same(sent: Any, parsed: Any) -> bool:
    """Whether JSON ``sent`` is the data protobuf parsed into ``parsed`` (numbers as doubles)."""
    if isinstance(sent, bool) or isinstance(parsed, bool):
        return sent is parsed
    if isinstance(sent, int | float) and isinstance(parsed, float):
        try:
            return float(sent) == parsed
        except OverflowError:
            return False
    if isinstance(sent, dict) and isinstance(parsed, dict):
        return sent.keys() == parsed.keys() and all(_same(v, parsed[k]) for k, v in sent.items())
    if isinstance(sent, list) and isinstance(parsed, list):
        return len(sent) == len(parsed) and all(map(_same, sent, parsed))
    return type(sent) is type(parsed) and bool(sent == parsed)


def _plain(value: Any) -> Any:
    """A protobuf ``Value`` as plain Python (what ``json.dumps`` takes)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _plain(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


# -- outgoing -------------------------------------------------------------------------


def text_part(text: str) -> Part:
    return Part(text=text)


def data_part(data: dict[str, Any]) -> Part:
    part = Part()
    part.data.struct_value.update(data)
    return part


def agent_message(
    parts: Iterable[Part], *, message_id: str, context_id: str, task_id: str
) -> A2AMessage:
    return A2AMessage(
        message_id=message_id,
        context_id=context_id,
        task_id=task_id,
        role=Role.ROLE_AGENT,
        parts=list(parts),
    )


def user_message(text: str, *, message_id: str, context_id: str, task_id: str) -> A2AMessage:
    return A2AMessage(
        message_id=message_id,
        context_id=context_id,
        task_id=task_id,
        role=Role.ROLE_USER,
        parts=[text_part(text)],
    )


def status_at(run: RunRecord) -> float:
    """When a run's task took its current status: its end, or its start while unfinished."""
    return run.finished_at or run.started_at


def nanos(at: float) -> int:
    """A time as the nanoseconds of a status timestamp (what ListTasks sorts by)."""
    return int(at * 1e9)


def state_name(state: TaskState, *, v03: bool = False) -> str:
    """``TASK_STATE_INPUT_REQUIRED``, or in v0.3's words ``input-required``."""
    name: str = TaskState.Name(state)
    return name.removeprefix("TASK_STATE_").lower().replace("_", "-") if v03 else name


def status(state: TaskState, at: float, message: A2AMessage | None = None) -> TaskStatus:
    out = TaskStatus(state=state)
    out.timestamp.FromNanoseconds(nanos(at))
    if message is not None:
        out.message.CopyFrom(message)
    return out


def reply_artifact(text: str) -> Artifact:
    return Artifact(artifact_id=REPLY_ARTIFACT, name=REPLY_ARTIFACT, parts=[text_part(text)])


def history_of(run_id: str, messages: Sequence[Message], context_id: str) -> list[A2AMessage]:
    """The run's user message(s) and the agent's text replies, as A2A messages.

    A message keeps the id its creator gave it: the client's ``messageId`` for the
    user's message (stored with it), ``<run id>-<seq>`` for the agent's.
    """
    out: list[A2AMessage] = []
    for m in messages:
        if m.run_id != run_id or not m.content:
            continue
        message_id = (m.meta or {}).get("message_id") or f"{run_id}-{m.seq}"
        ids = {"message_id": message_id, "context_id": context_id, "task_id": run_id}
        if m.role == "user":
            out.append(user_message(m.content, **ids))
        elif m.role == "assistant":
            message = agent_message([text_part(m.content)], **ids)
            if m.meta and isinstance(m.meta.get("agent"), str):
                message.metadata.update({"agent": m.meta["agent"]})  # which agent spoke
            out.append(message)
    return out


def handoff_note(source: str, target: str, *, task_id: str, context_id: str) -> A2AMessage:
    """The working-status message of a hand-off: the agent that speaks from now on."""
    message = agent_message(
        [text_part(f"Transferred from {source} to {target}.")],
        message_id=f"{task_id}-handoff-{target}",
        context_id=context_id,
        task_id=task_id,
    )
    message.metadata.update({"agent": target, "handoff": {"from": source, "to": target}})
    return message


def reply_of(run_id: str, messages: Sequence[Message]) -> str:
    """Everything the agent said in the run, in order (what the stream delivered)."""
    return "".join(m.content for m in messages if m.run_id == run_id and m.role == "assistant")


def build_task(
    *,
    task_id: str,
    context_id: str,
    state: TaskState,
    at: float,
    history: Sequence[A2AMessage] = (),
    reply: str = "",
    note: A2AMessage | None = None,
    history_length: int | None = None,
) -> Task:
    task = Task(id=task_id, context_id=context_id, status=status(state, at, note))
    if reply:
        task.artifacts.append(reply_artifact(reply))
    kept = list(history)
    if history_length is not None:
        kept = kept[-history_length:] if history_length > 0 else []
    task.history.extend(kept)
    return task


def status_event(
    task_id: str, context_id: str, state: TaskState, at: float, message: A2AMessage | None = None
) -> TaskStatusUpdateEvent:
    return TaskStatusUpdateEvent(
        task_id=task_id, context_id=context_id, status=status(state, at, message)
    )


def artifact_event(
    task_id: str, context_id: str, text: str, *, append: bool, last: bool
) -> TaskArtifactUpdateEvent:
    return TaskArtifactUpdateEvent(
        task_id=task_id,
        context_id=context_id,
        artifact=reply_artifact(text),
        append=append,
        last_chunk=last,
    )


def pending_note(pending: Sequence[dict[str, Any]], *, task_id: str, context_id: str) -> A2AMessage:
    """The input-required message: which tool calls wait for a yes or a no."""
    calls = [{k: p[k] for k in ("id", "name", "arguments")} for p in pending]
    names = ", ".join(c["name"] for c in calls) or "a tool call"
    parts = [
        text_part(f"Approve {names}? Answer yes or no."),
        data_part({"approvals": calls}),
    ]
    return agent_message(
        parts, message_id=f"{task_id}-approval", context_id=context_id, task_id=task_id
    )


def error_note(error: str, *, task_id: str, context_id: str) -> A2AMessage:
    return agent_message(
        [text_part(error)], message_id=f"{task_id}-error", context_id=context_id, task_id=task_id
    )


# -- errors ---------------------------------------------------------------------------


class QuotaExceededError(A2AError):
    """A quota refused the request: JSON-RPC error :data:`QUOTA_EXCEEDED_CODE` in both
    protocol versions; its details name the limit (``code``: ``rate_limited``,
    ``too_many_concurrent_turns``, ``token_budget_exhausted``, ``too_many_live_sessions``)
    and ``retryAfter`` (whole seconds, as HTTP's ``Retry-After``), with ``limit`` and
    ``scope`` (``user`` or ``tenant``). v1.0 carries them as the metadata of a
    ``google.rpc.ErrorInfo`` (reason ``RESOURCE_EXHAUSTED``) in ``data``; v0.3 as ``data``
    itself."""

    message = "A quota was exceeded"


QUOTA_EXCEEDED_CODE = -32029
"""In JSON-RPC's range for server errors; 29 as in HTTP 429."""


def _register_quota_error() -> None:
    """Teach the SDK's JSON-RPC layer our error's code (its maps are keyed by class)."""
    from a2a.server.jsonrpc_models import JSONRPCError
    from a2a.server.request_handlers import response_helpers
    from a2a.utils import errors

    errors.JSON_RPC_ERROR_CODE_MAP.setdefault(QuotaExceededError, QUOTA_EXCEEDED_CODE)
    errors.A2A_ERROR_REASONS.setdefault(QuotaExceededError, "RESOURCE_EXHAUSTED")
    response_helpers.EXCEPTION_MAP.setdefault(QuotaExceededError, JSONRPCError)
    # The v0.3 layer turns every code v0.3 did not define into -32603 (internal error),
    # which tells a client nothing it can act on: let ours through (JSON-RPC leaves
    # -32000..-32099 to the server, in any version).
    # the dispatcher first: importing the adapter alone is an import cycle in the SDK
    from a2a.server.routes import jsonrpc_dispatcher  # noqa: F401, I001
    from a2a.compat.v0_3 import jsonrpc_adapter

    jsonrpc_adapter._V03_ERROR_CODES = jsonrpc_adapter._V03_ERROR_CODES | {QUOTA_EXCEEDED_CODE}


_register_quota_error()


def to_a2a_error(exc: AgentHostError) -> A2AError:
    """agenthost's errors as JSON-RPC errors: bad input -> invalid params, unknown -> not
    found, a refused quota -> :class:`QuotaExceededError`."""
    if isinstance(exc, QuotaExceeded) and exc.code != QuotaExceeded.code:  # a named limit
        data: dict[str, Any] = {"code": exc.code}
        if exc.retry_after is not None:
            data["retryAfter"] = max(1, math.ceil(exc.retry_after))
        if exc.limit is not None:
            data["limit"] = exc.limit
        if exc.scope is not None:
            data["scope"] = exc.scope
        return QuotaExceededError(message=exc.message, data=data)
    if isinstance(exc, InvalidInput | QuotaExceeded):
        return InvalidParamsError(message=exc.message, data={"code": exc.code})
    if isinstance(exc, NotFound):
        return TaskNotFoundError(message=exc.message, data={"code": exc.code})
    return InternalError(message=exc.message, data={"code": exc.code})


# -- agent card -----------------------------------------------------------------------


def agent_card(
    agent: Agent, *, base_url: str, version: str, auth: str, path: str = JSONRPC_PATH
) -> AgentCard:
    """The card at ``/.well-known/agent-card.json``: one JSON-RPC endpoint, v1.0 and v0.3.

    Each agent of a server with several also has its own card and endpoint: ``path``
    is ``/a2a/<agent>``.
    """
    url = base_url.rstrip("/") + path
    description = agent.description or f"{agent.name}: {agent.instructions}"
    skills = [
        AgentSkill(
            id="chat",
            name=agent.name,
            description=description,
            tags=["chat"],
            examples=["My name is Alice", "What is my name?"],
        )
    ]
    skills += [
        AgentSkill(id=f"tool:{t.name}", name=t.name, description=t.description, tags=["tool"])
        for t in agent.tools
    ]
    card = AgentCard(
        name=agent.name,
        description=description,
        version=version,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=v)
            for v in PROTOCOL_VERSIONS
        ],
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=False, extended_agent_card=EXTENDED_CARD
        ),
        default_input_modes=list(INPUT_MODES),
        default_output_modes=list(OUTPUT_MODES),
        skills=skills,
    )
    if auth != "none":
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer",
                    bearer_format="JWT" if auth == "jwt" else "API key",
                    description="Authorization: Bearer <api key or JWT>",
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card
