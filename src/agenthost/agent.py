"""The agent definition: frozen configuration shared by every user and session."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agenthost.errors import ConfigError
from agenthost.tools import Tool, ToolFunction, as_tool

if TYPE_CHECKING:
    from agenthost.models.base import Model


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """What the agent is: never who it is talking to.

    ``model`` is a model object or a name such as ``"offline"`` or
    ``"openai:gpt-4o-mini"`` (``provider:model``); ``fallback_models`` are tried in
    order when it fails (see :mod:`agenthost.models.failover`). ``history_window``
    is how many past messages of a session the model sees on each call;
    ``max_steps`` bounds the model -> tools -> model loop of one turn.
    ``handoffs`` names the agents of the same host this one may transfer the
    session to (see :mod:`agenthost.handoffs`). ``turn_timeout`` (seconds) bounds a
    whole turn, model calls and tool calls together (``None``: the Host's default).
    """

    name: str = "agent"
    model: Model | str = "offline"
    instructions: str = "You are a helpful assistant."
    description: str = ""
    tools: tuple[Tool, ...] = field(default=())
    history_window: int = 20
    max_steps: int = 8
    handoffs: tuple[str, ...] = ()
    fallback_models: tuple[Model | str, ...] = ()
    turn_timeout: float | None = None

    def __post_init__(self) -> None:
        tools: Iterable[Tool | ToolFunction] = self.tools
        normalised = tuple(as_tool(t) for t in tools)
        names = [t.name for t in normalised]
        if len(set(names)) != len(names):
            raise ConfigError(f"agent {self.name!r}: duplicate tool names in {names}")
        object.__setattr__(self, "tools", normalised)
        if self.history_window < 1:
            raise ConfigError("history_window must be at least 1")
        if self.max_steps < 1:
            raise ConfigError("max_steps must be at least 1")
        if self.turn_timeout is not None and not self.turn_timeout > 0:
            raise ConfigError("turn_timeout must be a positive number of seconds")
        if isinstance(self.handoffs, str) or isinstance(self.fallback_models, str):
            raise ConfigError(f"agent {self.name!r}: handoffs and fallback_models are sequences")
        object.__setattr__(self, "handoffs", tuple(self.handoffs))
        object.__setattr__(self, "fallback_models", tuple(self.fallback_models))
        if self.name in self.handoffs:
            raise ConfigError(f"agent {self.name!r} cannot hand off to itself")

    def tool(self, name: str) -> Tool | None:
        for t in self.tools:
            if t.name == name:
                return t
        return None
