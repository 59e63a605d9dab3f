"""Anthropic's Messages API (streaming, tool use) through the official ``anthropic`` SDK.

An optional extra: ``pip install "agenthost[anthropic]"``. Models are named
``anthropic:<model>`` (or ``<provider>:<model>`` for a configured provider of
``kind = "anthropic"``).

The stored history maps onto Messages as follows: the agent's instructions
(and any system messages) become ``system``; assistant tool calls become
``tool_use`` blocks; tool results become ``tool_result`` blocks in the user
turn that follows; consecutive messages of one role are merged, since the API
wants the roles to alternate and to start with the user.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from agenthost.errors import MissingExtra, ModelError
from agenthost.messages import Message, ToolCall, Usage
from agenthost.models.base import ModelChunk, ModelRequest, TextChunk, retry_after

try:
    import anthropic
except ModuleNotFoundError as exc:
    raise MissingExtra("anthropic", "Anthropic models") from exc

if TYPE_CHECKING:
    from agenthost.models.providers import Provider

DEFAULT_MAX_TOKENS = 4096
"""The Messages API requires ``max_tokens``; a session's ``max_tokens`` replaces this."""
_RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


def anthropic_client(provider: Provider) -> anthropic.AsyncAnthropic:
    """The one client of an Anthropic provider; retries are the failover chain's."""
    return anthropic.AsyncAnthropic(
        api_key=provider.key() or "not-needed",
        base_url=provider.base_url,
        timeout=provider.timeout,
        max_retries=0,
    )


def to_anthropic(
    instructions: str, messages: Sequence[Message]
) -> tuple[str, list[dict[str, Any]]]:
    """(system, messages) in the Messages API shape."""
    system = [instructions] if instructions else []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role == "system":
            system.append(m.content)
        elif m.role == "user":
            add("user", [{"type": "text", "text": m.content}] if m.content else [])
        elif m.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            if (m.meta or {}).get("error"):
                block["is_error"] = True
            add("user", [block])
        else:
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c)}
                for c in m.tool_calls
            ]
            add("assistant", blocks)
    if out and out[0]["role"] != "user":  # a window that begins with the agent's reply
        out.insert(0, {"role": "user", "content": [{"type": "text", "text": "(continued)"}]})
    return "\n\n".join(system), out


def to_anthropic_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions tool schemas as Messages API tools."""
    out = []
    for tool in tools:
        function = tool["function"]
        out.append(
            {
                "name": function["name"],
                "description": function.get("description", ""),
                "input_schema": function.get("parameters") or {"type": "object"},
            }
        )
    return out


def _arguments(call: ToolCall) -> Any:
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def model_error(name: str, exc: anthropic.APIError) -> ModelError:
    """The provider's failure as a ``ModelError``; timeouts, 429, 5xx, 529 are retryable."""
    message = f"{name}: {type(exc).__name__}: {exc}"
    if isinstance(exc, anthropic.APIConnectionError):  # timeouts included
        return ModelError(message, retryable=True)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        kind = error.get("type") if isinstance(error, dict) else None
        retryable = status in (408, 409, 429) or status >= 500
        if status < 400:  # an error event inside a stream that began well
            retryable = kind in _RETRYABLE_STREAM_ERRORS
        return ModelError(message, retryable=retryable, retry_after=retry_after(exc.response))
    return ModelError(message)


class AnthropicModel:
    """Messages API with streaming and tool use, on a (shared) ``AsyncAnthropic`` client."""

    def __init__(
        self,
        model: str,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        provider: str = "anthropic",
    ) -> None:
        self.model = model
        self.provider = provider
        self.owns_client = client is None
        if client is None:
            client = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
            )
        self.client = client

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    async def aclose(self) -> None:
        if self.owns_client:
            await self.client.close()

    def params(self, request: ModelRequest) -> dict[str, Any]:
        system, messages = to_anthropic(request.instructions, request.messages)
        settings = request.settings
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": settings.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            params["system"] = system
        sampling: dict[str, float] = {}  # in the body: newer SDKs dropped these arguments
        if settings.temperature is not None:
            sampling["temperature"] = min(settings.temperature, 1.0)  # the API's range is 0-1
        if settings.top_p is not None:
            sampling["top_p"] = settings.top_p
        if sampling:
            params["extra_body"] = sampling
        if request.tools:
            params["tools"] = to_anthropic_tools(request.tools)
        return params

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        usage = Usage(requests=1)
        calls: dict[int, list[str]] = {}  # block index -> [id, name, partial JSON]
        try:
            events = await self.client.messages.create(**self.params(request))
            async for event in events:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta" and delta.text:
                        yield TextChunk(delta.text)
                    elif delta.type == "input_json_delta" and event.index in calls:
                        calls[event.index][2] += delta.partial_json
                elif kind == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        calls[event.index] = [block.id, block.name, ""]
                elif kind == "message_start":
                    usage.input_tokens = event.message.usage.input_tokens or 0
                    usage.output_tokens = event.message.usage.output_tokens or 0
                elif kind == "message_delta" and event.usage is not None:
                    usage.output_tokens = event.usage.output_tokens or usage.output_tokens
        except anthropic.APIError as exc:
            raise model_error(self.name, exc) from exc
        for index in sorted(calls):
            call_id, name, arguments = calls[index]
            yield ToolCall(call_id, name, arguments or "{}")
        yield usage
