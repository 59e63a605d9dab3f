"""The agent definition: frozen configuration shared by every user and session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agenthost.errors import ConfigError
from agenthost.tools import Tool, ToolContext, ToolFunction, ToolSource, as_tool

if TYPE_CHECKING:
    from agenthost.models.base import Model

log = logging.getLogger("agenthost.tools")


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
    ``mcp`` lists MCP servers (any :class:`~agenthost.tools.ToolSource`) whose tools
    are resolved per turn with the caller's identity, see :mod:`agenthost.mcp`.
    """

    name: str = "agent"
    model: Model | str = "offline"
    instructions: str = "You are a helpful assistant."
    description: str = ""
    tools: tuple[Tool, ...] = field(default=())
    mcp: tuple[ToolSource, ...] = field(default=())
    history_window: int = 20
    max_steps: int = 8
    handoffs: tuple[str, ...] = ()
    fallback_models: tuple[Model | str, ...] = ()
    turn_timeout: float | None = None
    _by_name: dict[str, Tool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tools: Iterable[Tool | ToolFunction] = self.tools
        normalised = tuple(as_tool(t) for t in tools)
        names = [t.name for t in normalised]
        if len(set(names)) != len(names):
            raise ConfigError(f"agent {self.name!r}: duplicate tool names in {names}")
        object.__setattr__(self, "tools", normalised)
        object.__setattr__(self, "_by_name", {t.name: t for t in normalised})
        sources = tuple(self.mcp)
        for source in sources:
            if not isinstance(source, ToolSource):
                raise ConfigError(f"agent {self.name!r}: {source!r} is not a tool source")
        source_names = [s.name for s in sources]
        if len(set(source_names)) != len(source_names):
            raise ConfigError(f"agent {self.name!r}: duplicate MCP server names {source_names}")
        object.__setattr__(self, "mcp", sources)
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
        """One of the agent's own tools (those of ``tools``) by name."""
        return self._by_name.get(name)

    async def toolset(self, context: ToolContext) -> Mapping[str, Tool]:
        """The tools one turn may call: the agent's own, then each source's for the caller.

        A source that fails contributes nothing; a source tool whose name is taken
        (by an own tool or an earlier source) is left out.
        """
        if not self.mcp:
            return self._by_name
        found = await asyncio.gather(
            *(s.tools_for(context) for s in self.mcp), return_exceptions=True
        )
        merged = dict(self._by_name)
        for source, tools in zip(self.mcp, found, strict=True):
            if isinstance(tools, BaseException):
                log.warning(
                    "tool source failed",
                    extra={"fields": {"source": source.name, "error": repr(tools)}},
                )
                continue
            for item in tools:
                if merged.setdefault(item.name, item) is not item:
                    log.warning(
                        "tool name taken; left out",
                        extra={"fields": {"source": source.name, "tool": item.name}},
                    )
        return merged
