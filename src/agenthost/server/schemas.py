"""Request and response bodies of the HTTP API (pydantic, with examples for ``/docs``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agenthost.config import check_storable
from agenthost.errors import InvalidInput
from agenthost.host import MAX_MESSAGE_CHARS
from agenthost.keys import MAX_ID_LENGTH

ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""Ids have no control characters (the full rule, ``str.isprintable``, is checked too)."""


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must not contain control or non-printable characters")
    return value


def _storable_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        check_storable(value, "value")
    except InvalidInput as exc:  # pydantic prefixes the field's location itself
        raise ValueError(exc.message.removeprefix("value ")) from None
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_object)]


Id = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, examples=["alice"]),
    AfterValidator(_printable),
]
SessionId = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, examples=["s1"]),
    AfterValidator(_printable),
]
Text = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
AgentName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, examples=["billing"]),
    AfterValidator(_printable),
]


class RequestBody(BaseModel):
    """A body of our own API: an unknown field is a 422 naming it, never silently dropped
    (``{"user": "bob"}`` for ``user_id`` would otherwise act for the default user).
    The OpenAI-compatible and A2A bodies keep the tolerance their specs ask for."""

    model_config = ConfigDict(extra="forbid")


CONFIG_DESCRIPTION = (
    "Per-session model configuration: model (from the server's allow-list), "
    "temperature (0-2), top_p (0-1), max_tokens; null removes a key."
)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["session 's1' not found"])
    request_id: str | None = Field(None, description="the X-Request-Id of the request")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0


class ToolCallOut(BaseModel):
    id: str
    name: str
    arguments: str = Field(description="JSON text of the arguments")


class ChatRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"message": "My name is Alice", "user_id": "alice", "session_id": "s1"}]
        },
    )

    message: Text
    user_id: Id | None = Field(
        None, description="Under --auth none, or with a service key: the user to act for"
    )
    session_id: SessionId | None = Field(None, description='Defaults to "default"')
    stream: bool = Field(False, description="Reply with Server-Sent Events")
    config: JsonObject | None = Field(None, description=CONFIG_DESCRIPTION)
    timeout: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Seconds this turn may take (model and tools together), at most the "
        "server's turn timeout; past it the turn fails with 504 turn_timeout",
    )
    background: bool = Field(
        False,
        description="Run on after the request: 202 with the run id (follow it at "
        "/v1/runs/{run_id}/events), or with stream, a stream the client may leave and resume",
    )


class ChatResponse(BaseModel):
    user_id: str
    session_id: str
    run_id: str
    reply: str
    usage: Usage
    status: Literal["completed", "awaiting_approval", "failed", "interrupted", "running"] = (
        "completed"
    )
    approvals: list[ToolCallOut] = Field(
        default_factory=list,
        description="Tool calls waiting for approval",
    )
    agent: str | None = Field(None, description="The agent that ended the turn (after hand-offs)")
    model: str | None = Field(None, description="The model that produced the reply")


class RunAccepted(BaseModel):
    """A background run: follow it at ``/v1/runs/{run_id}`` and ``.../events``."""

    run_id: str
    user_id: str
    session_id: str
    status: str = Field(examples=["running"])


class SeedChatRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "user-a", "message": "My name is Alice"}]},
    )

    user_id: Id
    message: Text


class SeedChatResponse(BaseModel):
    user_id: str
    reply: str


class SessionCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"session_id": "s1", "state": {"topic": "billing"}}]},
    )

    session_id: SessionId | None = Field(None, description="Generated when omitted")
    user_id: Id | None = Field(None, description="For service keys and --auth none")
    state: JsonObject | None = None
    config: JsonObject | None = Field(None, description=CONFIG_DESCRIPTION)
    agent: AgentName | None = Field(None, description="Start the session with this agent")


class SessionPatch(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"config": {"model": "offline", "temperature": 0.2}}]},
    )

    state: JsonObject | None = Field(None, description="JSON merge patch of the state")
    config: JsonObject | None = Field(None, description=CONFIG_DESCRIPTION)
    agent: AgentName | None = Field(
        None, description="Move the session to this agent (its active agent from now on)"
    )


class PendingApproval(BaseModel):
    id: str
    name: str
    arguments: str
    run_id: str


class SummaryOut(BaseModel):
    version: int
    text: str
    from_seq: int = Field(description="The summary covers messages from_seq..to_seq")
    to_seq: int
    created_at: float
    model: str | None = None
    error: str | None = Field(
        None, description="Set when the last compaction failed (text and range are the previous)"
    )


class SessionOut(BaseModel):
    tenant_id: str
    user_id: str
    session_id: str
    created_at: float
    updated_at: float
    message_count: int
    last_seq: int
    state: dict[str, Any]
    config: dict[str, Any]
    pending_approvals: list[PendingApproval]
    revision: int
    agent: str = Field(description="The agent the session is talking to (after hand-offs)")
    entry_agent: str | None = Field(
        None, description="The agent the session started with (on a server with several)"
    )
    summary: SummaryOut | None = Field(
        None,
        description="What the model is told of the messages that fell out of its window "
        "(GET of one session; not in listings)",
    )


class SessionList(BaseModel):
    sessions: list[SessionOut]
    limit: int
    offset: int


class MessageOut(BaseModel):
    seq: int
    role: str
    content: str
    run_id: str | None = None
    created_at: float
    tool_calls: list[ToolCallOut] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    meta: dict[str, Any] | None = None


class MessagePage(BaseModel):
    messages: list[MessageOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; null on the last page"
    )


class ApprovalRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"approve": True}]})

    approve: bool
    stream: bool = Field(False, description="Reply with Server-Sent Events")


class Deleted(BaseModel):
    deleted: int


Label = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["preference"]),
    AfterValidator(_printable),
]
MemoryText = Annotated[
    str, Field(min_length=1, max_length=4000, examples=["The user's name is Alice."])
]


class MemoryCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"text": "Prefers answers in French", "kind": "preference"}]
        }
    )

    text: MemoryText
    kind: Label | None = None
    tags: list[Label] = Field(default_factory=list, max_length=20)
    user_id: Id | None = Field(None, description="For service and admin keys, and --auth none")
    session_id: SessionId | None = Field(None, description="The session it came from, if any")


class MemoryPatch(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "Prefers answers in German", "revision": 1}]}
    )

    text: MemoryText | None = None
    kind: Label | None = Field(None, description="null removes it")
    tags: list[Label] | None = Field(None, max_length=20)
    revision: int | None = Field(
        None, ge=0, le=2**53, description="Change it only if it is still at this revision (409)"
    )


class MemoryOut(BaseModel):
    id: str
    tenant_id: str
    user_id: str
    text: str
    kind: str | None
    tags: list[str]
    created_at: float
    updated_at: float
    session_id: str | None = Field(description="Where it came from (null: stored by an app)")
    run_id: str | None
    revision: int


class MemoryList(BaseModel):
    memories: list[MemoryOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null at the end")


class UserExport(BaseModel):
    tenant_id: str
    user_id: str
    sessions: list[dict[str, Any]]
    memories: list[MemoryOut]


class Stats(BaseModel):
    model_config = ConfigDict(extra="allow")

    total_sessions: int
    live_sessions: int
    active_sessions: int
    idle_sessions: int
    max_live_sessions: int
    session_ttl_seconds: float | None
    cleanup_interval_seconds: float | None
    session_retention_seconds: float | None = None
    evictions: int
    expirations: int


class LiveSessionOut(BaseModel):
    tenant_id: str
    user_id: str
    session_id: str
    created_at: float
    last_used: float
    busy: bool
    agent: str | None = None
    messages_in_window: int


class LiveSessions(BaseModel):
    sessions: list[LiveSessionOut]


class Evicted(BaseModel):
    evicted: bool


class CleanupResult(BaseModel):
    expired: int
    deleted: int


class AgentOut(BaseModel):
    name: str = Field(examples=["billing"])
    description: str
    model: str = Field(examples=["openai:gpt-4o-mini"])
    fallback_models: list[str]
    tools: list[str]
    mcp: list[str] = Field(
        default_factory=list, description="Its MCP tool servers (their tools vary by user)"
    )
    handoffs: list[str] = Field(description="Agents it may transfer a session to")
    default: bool = Field(description="Answers the routes that name no agent")


class AgentList(BaseModel):
    agents: list[AgentOut]


class Health(BaseModel):
    status: str = Field(examples=["ok"])


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed JSON",
        401: "Missing or bad credentials",
        403: "Not allowed for this credential",
        404: "Unknown (or not the caller's)",
        409: "Session busy or in conflict",
        413: "Body too large",
        422: "Invalid input",
        503: "Store or model unavailable",
        504: "The turn ran past its deadline",
    }.items()
}
"""Error responses every API route may return, for the OpenAPI document."""
