"""Model adapters behind one protocol, and resolution of model names."""

from __future__ import annotations

from dataclasses import dataclass

from agenthost.errors import ConfigError
from agenthost.models.base import (
    Model,
    ModelChunk,
    ModelReply,
    ModelRequest,
    ModelSettings,
    TextChunk,
    complete,
)
from agenthost.models.offline import FunctionModel, OfflineModel, tool_call

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 1


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """How long a network model may keep a turn waiting.

    ``timeout``: seconds to connect, and to wait for the first or the next part of the
    reply, on each attempt (a reply that keeps arriving is never cut short).
    ``retries``: further attempts after a connection error, a timeout, a 429 or a 5xx,
    before any of the reply arrived. A provider that never answers holds a turn for
    about ``timeout * (retries + 1)`` seconds: 61 s with the defaults.
    """

    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigError(f"model timeout must be a positive number, got {self.timeout!r}")
        if self.retries < 0:
            raise ConfigError(f"model retries must be 0 or more, got {self.retries!r}")


def resolve_model(spec: Model | str, options: ProviderOptions | None = None) -> Model:
    """Turn ``"offline"``, ``"offline:200ms"`` or ``"openai:<model>"`` into a model;
    ``options`` bound a network provider's waits (the offline model has none)."""
    if not isinstance(spec, str):
        return spec
    provider, _, rest = spec.partition(":")
    if provider == "offline":
        delay = 0.0
        if rest:
            try:
                delay = (
                    float(rest.removesuffix("ms")) / 1000 if rest.endswith("ms") else float(rest)
                )
            except ValueError:
                raise ConfigError(f"bad offline model delay in {spec!r}") from None
        return OfflineModel(delay=delay, name=spec)
    if provider == "openai":
        from agenthost.models.openai import OpenAIModel

        options = options or ProviderOptions()
        return OpenAIModel(
            rest or "gpt-4o-mini", timeout=options.timeout, max_retries=options.retries
        )
    raise ConfigError(f"unknown model {spec!r}: use 'offline' or 'openai:<model name>'")


__all__ = [
    "FunctionModel",
    "Model",
    "ModelChunk",
    "ModelReply",
    "ModelRequest",
    "ModelSettings",
    "OfflineModel",
    "ProviderOptions",
    "TextChunk",
    "complete",
    "resolve_model",
    "tool_call",
]
