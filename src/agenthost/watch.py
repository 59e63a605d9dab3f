"""Following turns from the inside: the hooks that usage metering and tracing use.

A :class:`Watcher` is given each turn as it starts (``TurnEnv.watcher``) and may
return a :class:`TurnWatch` for it; the turn then reports its model calls, its
tool calls and its end to that object. Hooks are called synchronously on the
turn's path: keep them cheap (buffer, never do I/O). With no watcher (the
default), a turn pays one ``is None`` check per hook point.

The watch reads what it needs from the turn itself (``turn.run``: key, status,
usage so far; ``turn.model``; ``turn.env.agent``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agenthost.messages import ToolCall
    from agenthost.models.base import ModelRequest
    from agenthost.turn import Turn


class TurnWatch(Protocol):
    """One turn, as it runs (a resumed turn gets a new watch)."""

    def model_started(self, request: ModelRequest) -> None: ...

    def model_finished(self, text: str, calls: Sequence[ToolCall]) -> None:
        """The model call ended; ``turn.usage`` now includes its usage."""
        ...

    def tool_started(self, call: ToolCall) -> None: ...

    def tool_finished(self, call: ToolCall, content: str, is_error: bool) -> None: ...

    def ended(self) -> None:
        """The turn stopped: finished, failed, interrupted or paused for approval
        (``turn.run.status`` says which)."""
        ...


class Watcher(Protocol):
    def watch(self, turn: Turn) -> TurnWatch | None: ...


class _Fan:
    """Several watches of one turn as one."""

    __slots__ = ("watches",)

    def __init__(self, watches: list[TurnWatch]) -> None:
        self.watches = watches

    def model_started(self, request: ModelRequest) -> None:
        for w in self.watches:
            w.model_started(request)

    def model_finished(self, text: str, calls: Sequence[ToolCall]) -> None:
        for w in self.watches:
            w.model_finished(text, calls)

    def tool_started(self, call: ToolCall) -> None:
        for w in self.watches:
            w.tool_started(call)

    def tool_finished(self, call: ToolCall, content: str, is_error: bool) -> None:
        for w in self.watches:
            w.tool_finished(call, content, is_error)

    def ended(self) -> None:
        for w in self.watches:
            w.ended()


class Watchers:
    """Several watchers as one (``combine`` builds it)."""

    __slots__ = ("watchers",)

    def __init__(self, watchers: Sequence[Watcher]) -> None:
        self.watchers = tuple(watchers)

    def watch(self, turn: Turn) -> TurnWatch | None:
        watches = [w for watcher in self.watchers if (w := watcher.watch(turn)) is not None]
        if not watches:
            return None
        return watches[0] if len(watches) == 1 else _Fan(watches)


def combine(*watchers: Watcher | None) -> Watcher | None:
    """The watchers given (``None`` ones left out) as one; ``None`` if there are none."""
    present = [w for w in watchers if w is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Watchers(present)
