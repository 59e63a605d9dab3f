"""Model adapters behind one protocol, and resolution of model names."""

from __future__ import annotations

from agenthost.errors import ConfigError
from agenthost.models.base import (
    Model,
    ModelChunk,
    ModelReply,
    ModelRequest,
    ModelSettings,
    Served,
    TextChunk,
    complete,
)
from agenthost.models.offline import FunctionModel, OfflineModel, tool_call


def resolve_model(spec: Model | str) -> Model:
    """Turn ``"offline"``, ``"offline:200ms"``, ``"openai:<model>"`` or ``"anthropic:<model>"``
    into a model with a client of its own (a Host shares one client per provider instead:
    see :mod:`agenthost.models.providers`)."""
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

        return OpenAIModel(rest or "gpt-4o-mini")
    if provider == "anthropic" and rest:
        from agenthost.models.anthropic import AnthropicModel

        return AnthropicModel(rest)
    raise ConfigError(
        f"unknown model {spec!r}: use 'offline', 'openai:<model name>' or 'anthropic:<model name>'"
    )


__all__ = [
    "FunctionModel",
    "Model",
    "ModelChunk",
    "ModelReply",
    "ModelRequest",
    "ModelSettings",
    "OfflineModel",
    "Served",
    "TextChunk",
    "complete",
    "resolve_model",
    "tool_call",
]
