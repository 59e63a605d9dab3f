"""Any OpenAI-compatible Chat Completions endpoint, through the official SDK."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from agenthost.errors import ConfigError, MissingExtra, ModelError
from agenthost.messages import Message, ToolCall, Usage
from agenthost.models.base import (
    ModelChunk,
    ModelRequest,
    TextChunk,
    connection_cause,
    endpoint,
    read_timeout,
    retry_after,
)

try:
    import openai
except ModuleNotFoundError as exc:
    raise MissingExtra("openai", "the OpenAI model adapter (openai:<model>)") from exc

if TYPE_CHECKING:
    from agenthost.models.providers import Provider


def openai_client(provider: Provider) -> openai.AsyncOpenAI:
    """The one client of an OpenAI-compatible provider. Retries are the failover chain's
    (:mod:`agenthost.models.failover`), not the SDK's."""
    return openai.AsyncOpenAI(
        api_key=provider.key() or "not-needed",
        base_url=provider.base_url,
        timeout=provider.timeout,
        max_retries=0,
    )


def model_error(
    name: str, exc: openai.APIError, client: openai.AsyncOpenAI | None = None
) -> ModelError:
    """The provider's failure as a ``ModelError`` naming the model, the provider's URL (never
    its key) and the cause; timeouts, lost connections, 429 and 5xx are retryable."""
    where = f"{name} at {endpoint(client.base_url)}" if client is not None else name
    if isinstance(exc, openai.APITimeoutError) and client is not None:
        return ModelError(
            f"{where}: no answer within {read_timeout(client.timeout):g} s; the provider is "
            "slow or down (its timeout: model_timeout, or timeout in [providers.<name>])",
            retryable=True,
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(f"{where}: cannot connect: {connection_cause(exc)}", retryable=True)
    message = f"{where}: {type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in (408, 409, 429) or status >= 500
        return ModelError(message, retryable=retryable, retry_after=retry_after(exc.response))
    return ModelError(message)


def to_openai_messages(instructions: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


class OpenAIModel:
    """Chat Completions with streaming and tool calls.

    ``base_url`` and ``api_key`` default to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``;
    DeepSeek, vLLM and Ollama work by pointing ``base_url`` at them. A ``client``
    passed in is shared (its provider closes it); ``provider`` names the model
    (``deepseek:deepseek-chat``).
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        client: openai.AsyncOpenAI | None = None,
        provider: str = "openai",
    ) -> None:
        self.model = model
        self.provider = provider
        self.owns_client = client is None
        if client is None:
            key = api_key or os.environ.get("OPENAI_API_KEY")
            url = base_url or os.environ.get("OPENAI_BASE_URL")
            if not key and not url:
                raise ConfigError(
                    f"model openai:{model} needs OPENAI_API_KEY "
                    "(or a base_url for a local endpoint)"
                )
            client = openai.AsyncOpenAI(
                api_key=key or "not-needed",
                base_url=url,
                timeout=timeout,
                max_retries=max_retries,
            )
        self.client = client

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections, if this model made its client."""
        if self.owns_client:
            await self.client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.instructions, request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            **request.settings.to_kwargs(),
        }
        if request.tools:
            params["tools"] = list(request.tools)
        try:
            stream = await self.client.chat.completions.create(**params)
            partial: dict[int, list[str]] = {}
            saw_usage = False
            async for chunk in stream:
                if chunk.usage is not None:
                    saw_usage = True
                    yield Usage(
                        input_tokens=chunk.usage.prompt_tokens,
                        output_tokens=chunk.usage.completion_tokens,
                        requests=1,
                    )
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        yield TextChunk(delta.content)
                    for tc in delta.tool_calls or ():
                        slot = partial.setdefault(tc.index, ["", "", ""])
                        if tc.id:
                            slot[0] = tc.id
                        if tc.function is not None:
                            slot[1] += tc.function.name or ""
                            slot[2] += tc.function.arguments or ""
            for index in sorted(partial):
                call_id, name, arguments = partial[index]
                yield ToolCall(call_id or f"call_{index}", name, arguments or "{}")
            if not saw_usage:
                yield Usage(requests=1)
        except openai.APIError as exc:
            raise model_error(self.name, exc, self.client) from exc
