"""OpenAI Chat Completions on top of the Host: request schema, history reconciliation, replies.

A Chat Completions client sends the whole conversation on every call, while a
session already stores it. :func:`reconcile` decides what is new: the trailing
user message(s) after the last assistant message. Everything before them is
compared with the stored history as a client sees it (:func:`transcript`: user
messages and the agent's replies, tool traffic left out, consecutive same-role
messages merged). If the two disagree, the stored history wins (the model sees
the session, not the client's copy) and the reply says so with
``X-Agenthost-History: diverged``.

Several trailing user messages become one stored user message (joined by a
blank line), and :func:`transcript` merges consecutive user messages the same
way, so the next call still matches.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agenthost.errors import AgentHostError, InvalidInput
from agenthost.events import Delta, Done, ErrorEvent, Event, Handoff, RunResult
from agenthost.messages import Message, Usage

USER_JOINER = "\n\n"
HISTORY_HEADER = "X-Agenthost-History"
STATELESS_HEADER = "X-Agenthost-Stateless"
SESSION_HEADER = "X-Session-Id"
RUN_HEADER = "X-Agenthost-Run-Id"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of the Chat Completions request agenthost honours; other fields are ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "agent",
                    "messages": [{"role": "user", "content": "My name is Alice"}],
                    "user": "alice",
                }
            ]
        },
    )

    model: str = Field(min_length=1, description="The agent's name (see GET /v1/models)")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(
        None, description="Under --auth none, or with a service key: the user to act for"
    )
    metadata: dict[str, Any] | None = Field(
        None, description="metadata.session_id picks the session (or the X-Session-Id header)"
    )
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    tools: list[dict[str, Any]] | None = None


def check_request(body: ChatCompletionRequest) -> None:
    """Refuse what agenthost cannot honour instead of silently ignoring it."""
    if body.n is not None and body.n != 1:
        raise InvalidInput("n must be 1: an agent turn produces one reply", field="n")
    if body.tools:
        raise InvalidInput(
            "client-side tools are not supported: the agent runs its own tools", field="tools"
        )


def sampling_config(body: ChatCompletionRequest) -> dict[str, Any]:
    """Per-request model settings (used by stateless calls; sessions keep their own config)."""
    config: dict[str, Any] = {}
    if body.temperature is not None:
        config["temperature"] = body.temperature
    if body.top_p is not None:
        config["top_p"] = body.top_p
    limit = body.max_completion_tokens
    if limit is None:
        limit = body.max_tokens
    if limit is not None:
        config["max_tokens"] = limit
    return config


def session_from(header: str | None, metadata: dict[str, Any] | None) -> str | None:
    if header:
        return header
    value = (metadata or {}).get("session_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("metadata.session_id must be a string", field="metadata.session_id")
    return value


def _text(message: ChatMessageIn, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type not in ("text", "input_text", "output_text") or part.text is None:
            raise InvalidInput(
                f"messages[{index}]: only text content is supported, not {part.type!r}",
                field=f"messages.{index}.content",
            )
        parts.append(part.text)
    return "\n".join(parts)


def to_messages(messages: Sequence[ChatMessageIn]) -> list[Message]:
    """The client's conversation as agenthost messages (system, user and assistant only)."""
    out: list[Message] = []
    for index, message in enumerate(messages):
        if message.role in ("tool", "function") or message.tool_calls:
            raise InvalidInput(
                f"messages[{index}]: tool messages are not supported: the agent runs its own tools",
                field=f"messages.{index}",
            )
        role: Literal["system", "user", "assistant"] = (
            "system" if message.role == "developer" else message.role  # type: ignore[assignment]
        )
        out.append(Message(role, _text(message, index)))
    if out[-1].role != "user":
        raise InvalidInput("the last message must be the user's", field="messages")
    return out


Entry = tuple[str, frozenset[str]]
"""One transcript line: a role and the texts a client may hold for it."""


def transcript(messages: Iterable[Message]) -> list[Entry]:
    """Stored history as a Chat Completions client sees it.

    User messages (consecutive ones merged), and per turn the agent's reply: a
    client that read the non-streaming response holds the turn's last assistant
    text; one that read the stream holds every assistant text of the turn,
    concatenated. Either matches. Tool traffic is the server's business.
    """
    out: list[Entry] = []
    users: list[str] = []
    replies: list[str] = []

    def flush() -> None:
        if users:
            out.append(("user", frozenset({USER_JOINER.join(users)})))
            users.clear()
        texts = frozenset(t for t in (replies[-1] if replies else "", "".join(replies)) if t)
        if texts:
            out.append(("assistant", texts))
        replies.clear()

    for message in messages:
        if message.role == "user":
            if replies:
                flush()
            users.append(message.content)
        elif message.role == "assistant" and message.content:
            if users:
                out.append(("user", frozenset({USER_JOINER.join(users)})))
                users.clear()
            replies.append(message.content)
    flush()
    return out


def client_transcript(messages: Iterable[Message]) -> list[tuple[str, str]]:
    """The client's user and assistant messages, consecutive same-role ones merged."""
    out: list[tuple[str, str]] = []
    for message in messages:
        if message.role not in ("user", "assistant") or not message.content:
            continue
        joiner = USER_JOINER if message.role == "user" else ""
        if out and out[-1][0] == message.role:
            out[-1] = (message.role, out[-1][1] + joiner + message.content)
        else:
            out.append((message.role, message.content))
    return out


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What to run: the new user input, and whether the client's history disagreed."""

    text: str
    diverged: bool

    @property
    def header(self) -> str:
        return "diverged" if self.diverged else "match"


def reconcile(client: Sequence[Message], stored: Sequence[Message]) -> Reconciled:
    """Split off the trailing user message(s) and compare the rest with the stored history."""
    start = len(client)
    while start > 0 and client[start - 1].role == "user":
        start -= 1
    new = [m.content for m in client[start:]]
    text = USER_JOINER.join(new)
    if not text.strip():
        raise InvalidInput("the last user message must not be empty", field="messages")
    before = client_transcript(client[:start])
    saved = transcript(stored)
    same = len(before) == len(saved) and all(
        role == want_role and text_ in texts
        for (role, text_), (want_role, texts) in zip(before, saved, strict=True)
    )
    return Reconciled(text, not same)


# -- responses ------------------------------------------------------------------------


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def extension(result: RunResult, *, stateless: bool) -> dict[str, Any]:
    """agenthost's own fields on a completion (clients ignore unknown fields)."""
    out: dict[str, Any] = {"status": result.status}
    if not stateless:
        out.update(session_id=result.session_id, run_id=result.run_id)
    if result.approvals:
        out["approvals"] = [c.to_dict() for c in result.approvals]
    return out


def completion(
    result: RunResult, *, completion_id: str, created: int, model: str, stateless: bool
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.reply, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_dict(result.usage),
        "system_fingerprint": None,
        "agenthost": extension(result, stateless=stateless),
    }


@dataclass(frozen=True, slots=True)
class ChunkWriter:
    """Encodes ``chat.completion.chunk`` frames of one completion as SSE ``data:`` lines."""

    completion_id: str
    created: int
    model: str
    include_usage: bool
    stateless: bool

    def chunk(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        **extra: Any,
    ) -> bytes:
        body: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            body["usage"] = None
        body.update(extra)
        return data(body)

    def usage(self, usage: Usage) -> bytes:
        body = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage_dict(usage),
        }
        return data(body)

    async def frames(self, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
        """The turn's events as chunks: role first, text deltas, the finish, usage, [DONE].

        The first event is awaited before anything is yielded, so errors while the
        turn starts (bad input, busy session) raise to the caller, not into the stream.
        """
        try:
            async for frame in self._frames(events):
                yield frame
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:  # stop the turn now (stored as interrupted), not at GC time
                await close()

    async def _frames(self, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
        try:
            pending: Event | None = await anext(events)
        except StopAsyncIteration:
            pending = None
        writer = self
        yield writer.chunk({"role": "assistant", "content": ""})
        while pending is not None:
            event = pending
            if type(event) is Delta:
                if event.text:
                    yield writer.chunk({"content": event.text})
            elif type(event) is Handoff:  # the new agent speaks: chunks carry its name
                writer = dataclasses.replace(writer, model=event.target)
            elif type(event) is Done:
                agenthost = extension(event.result, stateless=self.stateless)
                yield writer.chunk({}, "stop", agenthost=agenthost)
                if self.include_usage:
                    yield writer.usage(event.result.usage)
                yield b"data: [DONE]\n\n"
                return
            elif type(event) is ErrorEvent:
                yield error_frame(event.error)
                return
            try:
                pending = await anext(events)
            except StopAsyncIteration:
                pending = None
            except AgentHostError as exc:
                yield error_frame(exc)
                return


def data(body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def error_frame(error: AgentHostError) -> bytes:
    """An error inside a stream, in the shape the OpenAI SDK raises as ``APIError``."""
    return data({"error": {"code": error.code, "message": error.message}})


def models_list(names: Iterable[str], *, created: int = 0) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(name, created=created) for name in names]}


def model_card(name: str, *, created: int = 0) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "agenthost"}
