"""Hand-offs: an agent transfers the session to another agent of the same host.

An agent lists the agents it may hand off to (``Agent.handoffs``); its model
sees one transfer tool per target, ``transfer_to_<name>``. When the model calls
one, the turn loop (:meth:`agenthost.turn.Turn.run_tools`):

1. answers the call with a tool message ("transferred from triage to billing"),
   so the transfer is part of the history every later model call sees;
2. stores, in the same checked write, the session's new active agent (the
   reserved ``"agent"`` config key, see :mod:`agenthost.agents`), so later
   turns, on any process, continue with the new agent;
3. emits a ``handoff`` event and continues the turn with the new agent's
   model, instructions and tools: the new agent answers the user in this turn.

Loops are bounded: at most :data:`MAX_HANDOFFS` transfers in one turn (a
transfer past it is answered with an error the model sees, and the current
agent carries on), one per model step, and each agent's ``max_steps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenthost.messages import ToolCall

if TYPE_CHECKING:
    from agenthost.agent import Agent

PREFIX = "transfer_to_"
MAX_HANDOFFS = 4
"""Transfers allowed in one turn; stops two agents handing a user back and forth forever."""


def transfer_name(target: str) -> str:
    return PREFIX + target


def transfer_schema(target: Agent) -> dict[str, Any]:
    """The transfer tool to ``target``, in the Chat Completions ``tools`` shape."""
    about = target.description or target.instructions
    return {
        "type": "function",
        "function": {
            "name": transfer_name(target.name),
            "description": f"Transfer the conversation to the {target.name} agent: {about}",
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "why, in a few words"},
                },
            },
        },
    }


def target_of(call: ToolCall, agent: Agent) -> str | None:
    """The agent ``call`` transfers to, if it is one of ``agent``'s transfer tools."""
    if not call.name.startswith(PREFIX):
        return None
    target = call.name[len(PREFIX) :]
    return target if target in agent.handoffs else None


def refusal(*, count: int, already: str | None, waiting: bool) -> str | None:
    """Why a transfer cannot happen now (None: it can)."""
    if waiting:
        return "error: a tool call of this step waits for approval; transfer after it is answered"
    if already is not None:
        return f"error: this step already transferred to {already}; one transfer per step"
    if count >= MAX_HANDOFFS:
        return (
            f"error: the conversation was transferred {count} times in this turn; "
            "answer the user yourself"
        )
    return None


def note(source: str, target: str) -> str:
    return f"Transferred from {source} to {target}."
