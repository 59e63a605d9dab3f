"""Any OpenAI-compatible Chat Completions endpoint, through the official SDK."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agenthost.errors import ConfigError, ModelError
from agenthost.messages import Message, ToolCall, Usage
from agenthost.models.base import ModelChunk, ModelRequest, TextChunk
from agenthost.urls import redact

try:
    import openai
except ImportError as exc:  # pragma: no cover - openai is a core dependency
    raise ImportError('OpenAIModel needs the openai SDK: pip install "openai>=1.40"') from exc


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


RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 10.0
"""A ``Retry-After`` longer than this fails the turn at once instead of holding it."""


class OpenAIModel:
    """Chat Completions with streaming and tool calls.

    ``base_url`` and ``api_key`` default to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``;
    DeepSeek, vLLM and Ollama work by pointing ``base_url`` at them.

    ``timeout`` bounds connecting and each wait for the next part of the reply;
    ``max_retries`` more attempts follow a connection error, a timeout, a 429 or a
    5xx while nothing of the reply has arrived (the retries are ours, not the SDK's,
    so that a turn's worst case is ``timeout * (max_retries + 1)`` plus a short backoff).
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 1,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
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
                max_retries=0,
            )
        self.client = client

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
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
        stream, attempts = await self._open(params)
        try:
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
            raise self._error(exc, attempts) from exc

    async def _open(self, params: dict[str, Any]) -> tuple[Any, int]:
        """Start the streamed call, retrying what may succeed on another attempt."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.client.chat.completions.create(**params), attempt
            except openai.APIError as exc:
                delay = _retry_delay(exc, attempt)
                if attempt > self.max_retries or delay is None:
                    raise self._error(exc, attempt) from exc
            await asyncio.sleep(delay)

    def _error(self, exc: openai.APIError, attempts: int) -> ModelError:
        """What failed, where (the provider's URL, never its key) and after how many tries."""
        where = f"{self.name} at {redact(str(self.client.base_url).rstrip('/'))}"
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if isinstance(exc, openai.APITimeoutError):
            return ModelError(
                f"{where}: no answer within {self.timeout:g} s{tries}; the provider is slow "
                "or down (settings model_timeout, model_retries)"
            )
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(f"{where}: cannot connect{tries}: {_cause(exc)}")
        return ModelError(f"{where}: {type(exc).__name__}: {exc}{tries}")


def _cause(exc: BaseException) -> str:
    """The innermost OS error under an SDK connection error ("Connection refused"), else
    the first cause the SDK wrapped."""
    seen: BaseException | None = exc
    found: BaseException = exc.__cause__ or exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return f"{type(found).__name__}: {found}"


def _retry_delay(exc: openai.APIError, attempt: int) -> float | None:
    """Seconds to wait before the next attempt, or None when retrying cannot help."""
    backoff: float = min(2.0, 0.25 * 2.0 ** (attempt - 1))
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return backoff
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in RETRY_STATUSES:
        return None
    after = exc.response.headers.get("retry-after")
    if after is None:
        return backoff
    try:
        seconds = float(after)
    except ValueError:
        return backoff
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER else None
