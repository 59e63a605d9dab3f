"""What the model sees on a turn besides the instructions: memories, summary, window.

The turn loop asks for a :class:`TurnContext` once per turn and speaking agent
(``TurnEnv.context``) and builds every model request of the turn from it:

    [memories of earlier sessions]  [summary of messages 1..k]  messages k+1.. of the window

The window never starts inside a tool exchange (:func:`model_window`), and
messages a summary covers are not repeated after it. Each agent's own options
decide: an agent without long-term memory recall gets no memories, one without
compaction no summary; a host none of whose agents has either has no context
source at all, and its requests are the window alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Reversible, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthost.messages import Message
from agenthost.stores.base import MemoryRecord, SessionSummary

if TYPE_CHECKING:
    from agenthost.agent import Agent
    from agenthost.live import LiveSession
    from agenthost.memory import Memories

ContextSource = Callable[["LiveSession", "Agent"], Awaitable["TurnContext"]]

MEMORY_HEADER = (
    "What you remember about this user from earlier conversations (most relevant first):"
)


def model_window(window: Any, limit: int | None = None) -> list[Message]:
    """The window (its last ``limit`` messages) as the model sees it: never starting inside
    a tool exchange."""
    messages = list(window)
    if limit is not None and len(messages) > limit:
        messages = messages[-limit:]
    start = 0
    while start < len(messages) and messages[start].role == "tool":
        start += 1
    return messages[start:] if start else messages


@dataclass(frozen=True, slots=True)
class TurnContext:
    """Messages put before ``agent``'s window, and the last seq the summary among them covers."""

    agent: str
    prefix: tuple[Message, ...] = ()
    after_seq: int = 0

    def messages(self, window: Iterable[Message], limit: int | None = None) -> list[Message]:
        after = self.after_seq
        visible = [m for m in window if m.seq > after] if after else window
        shown = model_window(visible, limit)
        return [*self.prefix, *shown] if self.prefix else shown


def memory_message(records: Sequence[MemoryRecord]) -> Message:
    lines = [MEMORY_HEADER]
    lines += [f"- {r.text} (id {r.memory_id})" for r in records]
    return Message("system", "\n".join(lines))


def summary_message(summary: SessionSummary) -> Message:
    header = (
        f"Summary of the earlier part of this conversation "
        f"(messages {summary.from_seq}-{summary.to_seq}):"
    )
    return Message("system", f"{header}\n{summary.text}")


def last_user_text(window: Reversible[Message]) -> str:
    for message in reversed(window):
        if message.role == "user":
            return message.content
    return ""


def context_source(memories: Memories, agents: Iterable[Agent]) -> ContextSource | None:
    """What a host's turns put before the window (None if no agent recalls or compacts)."""
    if not any(a.compaction or (a.long_term_memory and a.long_term_memory.recall) for a in agents):
        return None

    async def build(live: LiveSession, agent: Agent) -> TurnContext:
        prefix: list[Message] = []
        options = agent.long_term_memory
        if options is not None and options.recall:
            text = last_user_text(live.window)
            records = await memories.relevant(live.key, text, options)
            if records:
                prefix.append(memory_message(records))
        after = 0
        summary = live.summary if agent.compaction is not None else None
        if summary is not None and summary.to_seq:
            if summary.text:
                prefix.append(summary_message(summary))
            after = summary.to_seq
        return TurnContext(agent.name, tuple(prefix), after)

    return build
