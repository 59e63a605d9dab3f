"""The model protocol: one async streaming call; the plain call collects it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agenthost.messages import Message, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Per-call knobs a session may choose (validated by ``agenthost.config``)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None

    def to_kwargs(self) -> dict[str, Any]:
        return {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}


@dataclass(slots=True)
class ModelRequest:
    instructions: str
    messages: Sequence[Message]
    tools: Sequence[dict[str, Any]] = ()
    settings: ModelSettings = field(default_factory=ModelSettings)


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class Served:
    """Which model produces the chunks that follow (a failover chain says so first)."""

    model: str


ModelChunk = TextChunk | ToolCall | Usage | Served
"""A model stream yields text pieces, fully assembled tool calls, and usage (and, from a
failover chain, which of its models answered)."""


@dataclass(slots=True)
class ModelReply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class Model(Protocol):
    """A provider adapter. Implementations raise ``ModelError`` on provider failure."""

    @property
    def name(self) -> str: ...

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]: ...


async def complete(model: Model, request: ModelRequest) -> ModelReply:
    """Collect a model's stream into one reply."""
    reply = ModelReply()
    parts: list[str] = []
    async for chunk in model.stream(request):
        if isinstance(chunk, TextChunk):
            parts.append(chunk.text)
        elif isinstance(chunk, ToolCall):
            reply.tool_calls.append(chunk)
        elif isinstance(chunk, Usage):
            reply.usage.add(chunk)
    reply.text = "".join(parts)
    return reply


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for models without usage."""
    return max(1, (len(text) + 3) // 4) if text else 0


def retry_after(response: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds), if present and sane."""
    try:
        value = float(response.headers.get("retry-after", ""))
    except (AttributeError, TypeError, ValueError):
        return None
    return value if 0 <= value <= 3600 else None


def endpoint(base_url: object) -> str:
    """A provider's base URL for messages: without a password or a trailing slash."""
    from agenthost.urls import redact

    return redact(str(base_url).rstrip("/"))


def read_timeout(timeout: object) -> float:
    """Seconds of an SDK client's timeout (a number, or an ``httpx.Timeout``'s read part)."""
    if isinstance(timeout, int | float):
        return float(timeout)
    read = getattr(timeout, "read", None)
    return float(read) if isinstance(read, int | float) else 0.0


def connection_cause(exc: BaseException) -> str:
    """Why a connection failed, from the OS error under an SDK's wrapper ("Connection
    refused"), else the first cause the SDK wrapped."""
    import os

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    found = exc.__cause__ or exc
    return f"{type(found).__name__}: {found}" if str(found) else type(found).__name__
