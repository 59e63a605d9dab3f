"""What the model sees on a turn besides the instructions: memories, summary, window.

The turn loop asks for a :class:`TurnContext` once per turn (``TurnEnv.context``)
and builds every model request of the turn from it:

    [memories of earlier sessions]  [summary of messages 1..k]  messages k+1.. of the window

The window never starts inside a tool exchange (:func:`model_window`), and
messages a summary covers are not repeated after it. An agent without long-term
memory or compaction has no context source: its requests are the window alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Reversible, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthost.messages import Message
from agenthost.stores.base import MemoryRecord, SessionSummary

if TYPE_CHECKING:
    from agenthost.live import LiveSession
    from agenthost.memory import Memories

ContextSource = Callable[["LiveSession"], Awaitable["TurnContext"]]

MEMORY_HEADER = (
    "What you remember about this user from earlier conversations (most relevant first):"
)


def model_window(window: Any) -> list[Message]:
    """The window as the model sees it: never starting inside a tool exchange."""
    messages = list(window)
    start = 0
    while start < len(messages) and messages[start].role == "tool":
        start += 1
    return messages[start:] if start else messages


@dataclass(frozen=True, slots=True)
class TurnContext:
    """Messages put before the window, and the last seq the summary among them covers."""

    prefix: tuple[Message, ...] = ()
    after_seq: int = 0

    def messages(self, window: Iterable[Message]) -> list[Message]:
        after = self.after_seq
        visible = [m for m in window if m.seq > after] if after else window
        return [*self.prefix, *model_window(visible)] if self.prefix else model_window(visible)


NO_CONTEXT = TurnContext()


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


def context_source(memories: Memories | None, *, summaries: bool) -> ContextSource | None:
    """The context source of an agent: ``memories`` to recall (None: no recall), and
    whether to put the session's summary first (when the agent compacts)."""
    if memories is None and not summaries:
        return None

    async def build(live: LiveSession) -> TurnContext:
        prefix: list[Message] = []
        if memories is not None:
            records = await memories.relevant(live.key, last_user_text(live.window))
            if records:
                prefix.append(memory_message(records))
        after = 0
        summary = live.summary if summaries else None
        if summary is not None and summary.to_seq:
            if summary.text:
                prefix.append(summary_message(summary))
            after = summary.to_seq
        return TurnContext(tuple(prefix), after)

    return build
