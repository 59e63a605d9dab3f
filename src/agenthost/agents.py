"""Several agents on one Host: the set, and which agent a session is talking to.

A session's active agent is part of the session. It is stored in the session's
config under the reserved key ``"agent"`` (``{"active": "billing", "entry":
"triage"}``), so it is written by the session runtime's checked writes like
everything else in the session and every process sees the same one; no store
schema knows about agents. Clients cannot set the key through ``config``.

Which agent answers a turn (:meth:`AgentSet.choose`):

- A turn that names no agent (``/v1/chat``, ``/chat``, ``/a2a``) goes to the
  session's active agent; a new session starts with the default agent.
- A turn that names an agent (``/v1/agents/{agent}/chat``, the OpenAI ``model``,
  ``/a2a/{agent}``) starts a new session with it. On an existing session it is
  answered by the active agent when the named agent is the active one or the
  one the session started with (its entry agent: a client that keeps addressing
  ``triage`` after triage handed off to ``billing`` keeps talking to billing).
  Naming any other agent is refused (``Conflict``, HTTP 409) rather than
  silently moving someone else's conversation: continue without naming an
  agent, name the active one, or start a new session.

A server with one agent never records it (there is nothing to choose).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agenthost.agent import Agent
from agenthost.config import RESERVED_AGENT_KEY
from agenthost.errors import AgentHostError, ConfigError, Conflict, InvalidInput, NotFound
from agenthost.handoffs import transfer_name, transfer_schema

AGENT_KEY = RESERVED_AGENT_KEY
"""The reserved session-config key holding ``{"active": name, "entry": name}``."""

NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
"""Agent names on a multi-agent host: they are URL segments, model ids and tool names."""

AgentsLike = Agent | Sequence[Agent] | Mapping[str, Agent]


def active_name(config: Mapping[str, Any]) -> str | None:
    """The session's recorded active agent (None if it never recorded one)."""
    record = config.get(AGENT_KEY)
    if isinstance(record, dict) and isinstance(record.get("active"), str):
        return str(record["active"])
    return None


def entry_name(config: Mapping[str, Any]) -> str | None:
    record = config.get(AGENT_KEY)
    if isinstance(record, dict) and isinstance(record.get("entry"), str):
        return str(record["entry"])
    return None


def with_agent(config: Mapping[str, Any], active: str, entry: str) -> dict[str, Any]:
    """``config`` with the session's agent record replaced."""
    return {**config, AGENT_KEY: {"active": active, "entry": entry}}


def client_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The session config as clients set it: without the reserved agent record."""
    return {k: v for k, v in config.items() if k != AGENT_KEY}


@dataclass(frozen=True, slots=True)
class Choice:
    """The agent that answers a turn, and the agent record to store first (or None)."""

    agent: Agent
    record: dict[str, str] | None = None


class AgentSet:
    """The agents one Host serves, by name, in order; the first is the default unless named.

    Validated once: unique names (URL- and tool-safe when there are several),
    hand-off targets that exist, no tool named like a transfer tool. Each
    agent's tool schemas (its tools, then one transfer tool per hand-off
    target) are built here once, not on every model call.
    """

    __slots__ = ("_agents", "_schemas", "default", "window")

    def __init__(self, agents: AgentsLike, *, default: str | None = None) -> None:
        listed = _as_list(agents)
        if not listed:
            raise ConfigError("a host needs at least one agent")
        by_name: dict[str, Agent] = {}
        for agent in listed:
            if agent.name in by_name:
                raise ConfigError(f"two agents are named {agent.name!r}")
            by_name[agent.name] = agent
        if len(by_name) > 1:
            for name in by_name:
                if not NAME.match(name):
                    raise ConfigError(
                        f"agent name {name!r}: use 1-48 letters, digits, '_' or '-' "
                        "(names are URL segments, model ids and tool names)"
                    )
        for agent in listed:
            for target in agent.handoffs:
                if target not in by_name:
                    raise ConfigError(
                        f"agent {agent.name!r} hands off to {target!r}, which is not served; "
                        f"agents: {', '.join(by_name)}"
                    )
                if not NAME.match(target):
                    raise ConfigError(f"hand-off target {target!r} is not a valid agent name")
                if agent.tool(transfer_name(target)) is not None:
                    raise ConfigError(
                        f"agent {agent.name!r} has a tool named {transfer_name(target)!r}, "
                        "the name of its transfer tool"
                    )
        if default is not None and default not in by_name:
            raise ConfigError(f"default agent {default!r} is not one of: {', '.join(by_name)}")
        self._agents = by_name
        self.default: Agent = by_name[default] if default else listed[0]
        self.window = max(a.history_window for a in listed)
        self._schemas = {
            agent.name: [t.schema() for t in agent.tools]
            + [transfer_schema(by_name[t]) for t in agent.handoffs]
            for agent in listed
        }

    # -- lookup ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    @property
    def names(self) -> list[str]:
        return list(self._agents)

    def get(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def named(self, name: object) -> Agent:
        """The agent called ``name``, or ``NotFound``."""
        if not isinstance(name, str):
            raise InvalidInput("agent must be a string", field="agent")
        agent = self._agents.get(name)
        if agent is None:
            raise NotFound(f"agent {name!r} is not served here; agents: {', '.join(self._agents)}")
        return agent

    def schemas(self, agent: Agent) -> list[dict[str, Any]]:
        """The tools ``agent``'s model sees: its own, then its transfer tools."""
        cached = self._schemas.get(agent.name)
        if cached is not None and self._agents.get(agent.name) is agent:
            return cached
        return [t.schema() for t in agent.tools]

    # -- sessions ----------------------------------------------------------------------

    def active(self, config: Mapping[str, Any]) -> Agent:
        """The agent a session is talking to now (the default if it recorded none we serve)."""
        name = active_name(config)
        agent = self._agents.get(name) if name is not None else None
        return agent or self.default

    def choose(self, config: Mapping[str, Any], requested: str | None) -> Choice:
        """Which agent answers a turn on a session with ``config`` (see the module docstring)."""
        wanted = None if requested is None else self.named(requested)
        name = active_name(config)
        active = self._agents.get(name) if name is not None else None
        if active is None:  # a new session, or one whose agent is no longer served
            agent = wanted or self.default
            record = None if len(self) == 1 else {"active": agent.name, "entry": agent.name}
            return Choice(agent, record)
        if wanted is None or wanted is active or wanted.name == entry_name(config):
            return Choice(active)
        raise Conflict(
            f"this session is with agent {active.name!r}"
            + (f" (it started with {entry_name(config)!r})" if entry_name(config) else "")
            + f", not {wanted.name!r}: continue it without naming an agent or through "
            f"{active.name!r}, move it to {wanted.name!r} explicitly (PATCH the session's "
            "agent), or start a new session"
        )

    def moved(self, config: Mapping[str, Any], name: str) -> dict[str, Any]:
        """``config`` with ``name`` as the active agent (a client moving the session)."""
        return with_agent(config, name, entry_name(config) or name)

    def live_counts(self, sessions: Iterable[Any]) -> dict[str, dict[str, int]]:
        """Live (and busy) sessions by their active agent, for the Host's stats."""
        counts = {name: {"live_sessions": 0, "active_sessions": 0} for name in self._agents}
        for live in sessions:
            entry = counts[self.active(live.config).name]
            entry["live_sessions"] += 1
            entry["active_sessions"] += bool(live.busy)
        return counts

    def describe(self) -> list[dict[str, Any]]:
        """Each agent as ``GET /v1/agents`` lists it."""
        return [
            {
                "name": agent.name,
                "description": agent.description,
                "model": agent.model if isinstance(agent.model, str) else agent.model.name,
                "fallback_models": [
                    m if isinstance(m, str) else m.name for m in agent.fallback_models
                ],
                "tools": [t.name for t in agent.tools],
                "handoffs": list(agent.handoffs),
                "default": agent is self.default,
            }
            for agent in self
        ]


def _as_list(agents: AgentsLike | AgentSet) -> list[Agent]:
    if isinstance(agents, Agent):
        return [agents]
    if isinstance(agents, AgentSet):
        return list(agents)
    if isinstance(agents, Mapping):
        out = []
        for name, agent in agents.items():
            if not isinstance(agent, Agent):
                raise ConfigError(f"agents[{name!r}] is a {type(agent).__name__}, not an Agent")
            out.append(agent if agent.name == name else dataclasses.replace(agent, name=name))
        return out
    out = list(agents)
    for agent in out:
        if not isinstance(agent, Agent):
            raise ConfigError(f"{agent!r} is a {type(agent).__name__}, not an agenthost.Agent")
    return out


# -- loading agents from configuration -------------------------------------------------


def import_path(path: str, what: str) -> Any:
    """Import ``package.module:attribute`` (attribute may be dotted).

    Like uvicorn, the current directory is importable: ``myagent:agent`` finds
    ``./myagent.py``. A module that fails while importing is one ``ConfigError``.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what} {path!r} must look like 'package.module:attribute'")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {what} {path!r}: {exc}") from None
    except AgentHostError:
        raise
    except Exception as exc:  # the module itself failed: a SyntaxError, a NameError, ...
        raise ConfigError(f"importing {what} {path!r} failed: {type(exc).__name__}: {exc}") from exc
    return target


def load_agents(path: str) -> list[Agent]:
    """``module:attribute`` naming an Agent, a list or dict of them, or a function returning
    one of those."""
    target = import_path(path, "agents")
    if callable(target) and not isinstance(target, Agent):
        target = target()
    if isinstance(target, Agent | Mapping) or (
        isinstance(target, Iterable) and not isinstance(target, str | bytes)
    ):
        try:
            return _as_list(target if isinstance(target, Agent | Mapping) else list(target))
        except ConfigError as exc:
            raise ConfigError(f"{path!r}: {exc.message}") from None
    raise ConfigError(f"{path!r} is a {type(target).__name__}, not Agents (a list, dict or Agent)")


def agent_from_table(
    name: str, table: Mapping[str, Any], *, default_model: str, history_window: int = 20
) -> Agent:
    """An Agent from a ``[agents.<name>]`` table (tools are import paths)."""
    fields: dict[str, Any] = {k: v for k, v in table.items() if v is not None}
    fields["tools"] = tuple(import_path(str(path), "tool") for path in fields.get("tools", ()))
    fields["handoffs"] = tuple(fields.get("handoffs", ()))
    fields["fallback_models"] = tuple(fields.get("fallback_models", ()))
    fields.setdefault("model", default_model)
    fields.setdefault("history_window", history_window)
    try:
        return Agent(name=name, **fields)
    except TypeError as exc:
        raise ConfigError(f"[agents.{name}]: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"[agents.{name}]: {exc.message}") from None
