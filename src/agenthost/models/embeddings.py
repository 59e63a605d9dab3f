"""Embedders: text to vectors, for ranking memories by meaning.

One protocol (:class:`Embedder`); :class:`OpenAIEmbedder` calls any
OpenAI-compatible ``/embeddings`` endpoint through the official SDK (OpenAI,
vLLM, Ollama, ...), :class:`FunctionEmbedder` wraps a function (tests, local
models). :func:`resolve_embedder` turns ``"openai:<model>"`` or a function into one.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from agenthost.errors import ConfigError, ModelError

EmbedFunction = Callable[
    [list[str]], "Sequence[Sequence[float]] | Awaitable[Sequence[Sequence[float]]]"
]


@runtime_checkable
class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order. Raises ``ModelError`` on provider failure."""


class FunctionEmbedder:
    """An embedder from a function of a list of texts (sync or async)."""

    def __init__(self, function: EmbedFunction, *, name: str = "function") -> None:
        self.function = function
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def embed(self, texts: list[str]) -> list[list[float]]:
        result = self.function(texts)
        if inspect.isawaitable(result):
            result = await result
        vectors = [[float(x) for x in v] for v in result]
        if len(vectors) != len(texts):
            raise ModelError(
                f"embedder {self.name} returned {len(vectors)} vectors for {len(texts)}"
            )
        return vectors


class OpenAIEmbedder:
    """``client.embeddings.create`` of the ``openai`` SDK; ``base_url``/``api_key`` default to
    ``OPENAI_BASE_URL``/``OPENAI_API_KEY``, as for :class:`~agenthost.models.openai.OpenAIModel`."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        import openai

        key = api_key or os.environ.get("OPENAI_API_KEY")
        url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not key and not url:
            raise ConfigError(
                f"embedder openai:{model} needs OPENAI_API_KEY (or a base_url for a local endpoint)"
            )
        self.model = model
        self.dimensions = dimensions
        self.client = openai.AsyncOpenAI(
            api_key=key or "not-needed", base_url=url, timeout=timeout, max_retries=1
        )

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def embed(self, texts: list[str]) -> list[list[float]]:
        import openai

        try:
            if self.dimensions is None:
                response = await self.client.embeddings.create(model=self.model, input=texts)
            else:
                response = await self.client.embeddings.create(
                    model=self.model, input=texts, dimensions=self.dimensions
                )
        except openai.APIError as exc:
            raise ModelError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return [list(item.embedding) for item in ordered]

    async def aclose(self) -> None:
        await self.client.close()


def resolve_embedder(spec: Embedder | EmbedFunction | str) -> Embedder:
    """``"openai:<model>"``, an :class:`Embedder`, or a function of a list of texts."""
    if isinstance(spec, str):
        provider, _, model = spec.partition(":")
        if provider != "openai":
            raise ConfigError(f"unknown embedder {spec!r}: use 'openai:<model>' or a function")
        return OpenAIEmbedder(model or "text-embedding-3-small")
    if isinstance(spec, Embedder):
        return spec
    if callable(spec):
        return FunctionEmbedder(spec, name=getattr(spec, "__name__", "function"))
    raise ConfigError(f"embedder must be 'openai:<model>', an Embedder or a function, not {spec!r}")
