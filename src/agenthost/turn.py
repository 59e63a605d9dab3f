"""The turn loop: model -> tools -> model until a reply, a pause for approval, or the step limit.

Durability: the user's message and a ``running`` run record are stored before
the model is called; each assistant message and each step's tool results are
stored as they complete; the live session only changes after the store
accepted the write. A failure or interruption appends a closing message (and
results for any tool call left unanswered) so the stored history stays
well-formed: every turn ends with an assistant message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from agenthost.agent import Agent
from agenthost.errors import AgentHostError, ModelError
from agenthost.events import (
    ApprovalRequired,
    Delta,
    Done,
    ErrorEvent,
    Event,
    RunResult,
    RunStatus,
    ToolCallEvent,
    ToolResultEvent,
)
from agenthost.live import LiveSession
from agenthost.messages import Message, ToolCall, closing_messages
from agenthost.models.base import Model, ModelRequest, ModelSettings, TextChunk
from agenthost.session import Sessions
from agenthost.stores.base import PendingApproval, RunRecord
from agenthost.tools import ToolContext

if TYPE_CHECKING:
    from agenthost.watch import TurnWatch, Watcher


class TurnObserver(Protocol):
    """Hooks for metrics and logs; called synchronously, so keep them cheap."""

    def model_called(self, model: str, seconds: float) -> None: ...

    def turn_finished(self, run: RunRecord, seconds: float) -> None: ...


@dataclass(slots=True)
class TurnEnv:
    agent: Agent
    sessions: Sessions
    clock: Callable[[], float]
    observer: TurnObserver | None = None
    watcher: Watcher | None = None  # usage metering, tracing (agenthost.watch)


class CancelReason(str):
    """Why a turn was cancelled on purpose, stored as its run's error.

    ``asyncio_task.cancel(CancelReason("canceled by the client"))``; a plain
    cancellation is recorded as "the caller went away".
    """


def new_run_id() -> str:
    return "run_" + os.urandom(12).hex()


def model_window(window: Any) -> list[Message]:
    """The window as the model sees it: never starting inside a tool exchange."""
    messages = list(window)
    start = 0
    while start < len(messages) and messages[start].role == "tool":
        start += 1
    return messages[start:] if start else messages


class Turn:
    """One run on one live session; the caller holds the session's lock."""

    __slots__ = (
        "env",
        "live",
        "model",
        "open_calls",
        "run",
        "settings",
        "started",
        "usage",
        "watch",
    )

    def __init__(
        self,
        env: TurnEnv,
        live: LiveSession,
        model: Model,
        settings: ModelSettings,
        run: RunRecord | None = None,
    ) -> None:
        self.env = env
        self.live = live
        self.model = model
        self.settings = settings
        self.started = time.perf_counter()
        self.run = run or RunRecord(new_run_id(), live.key, "running", env.clock())
        self.usage = self.run.usage
        self.open_calls: dict[str, str] = {}
        self.watch: TurnWatch | None = None

    async def commit(
        self,
        messages: list[Message],
        *,
        state: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        pending: list[PendingApproval] | None = None,
    ) -> None:
        await self.env.sessions.commit(
            self.live, messages, run=self.run, state=state, config=config, pending=pending
        )

    async def begin(
        self,
        text: str,
        *,
        config: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Store the user's message (and the session's new ``config``) with a running run.

        Nothing is stored if this raises: the turn never began, there is nothing to close.
        """
        await self.commit([Message("user", text, run_id=self.run.run_id, meta=meta)], config=config)

    def run_steps(self) -> AsyncGenerator[Event, None]:
        """The model and tool steps after :meth:`begin`, guarded (see :meth:`guard`)."""
        return self.guard(self.steps())

    def resume(self, decisions: dict[str, bool]) -> AsyncGenerator[Event, None]:
        """Answer pending approvals (call id -> approved) and continue the turn."""
        return self.guard(self._resume(decisions))

    async def _resume(self, decisions: dict[str, bool]) -> AsyncIterator[Event]:
        live = self.live
        answered = [p for p in live.pending if p.call_id in decisions]
        remaining = [p for p in live.pending if p.call_id not in decisions]
        messages: list[Message] = []
        state = live.state
        for item in answered:
            call = item.call
            if decisions[call.id]:
                yield ToolCallEvent(call)
                content, is_error, state = await self.call_tool(call, state)
            else:
                content, is_error = "denied: the user did not approve this tool call", True
            yield ToolResultEvent(call.id, call.name, content, is_error)
            messages.append(self.tool_message(call, content, is_error))
        self.run.status = "awaiting_approval" if remaining else "running"
        await self.commit(
            messages, pending=remaining, state=state if state is not live.state else None
        )
        if remaining:
            yield Done(self.result("", remaining))
            return
        async for event in self.steps():
            yield event

    async def guard(self, inner: AsyncIterator[Event]) -> AsyncGenerator[Event, None]:
        """Turn any failure into a closed, stored run and an ``error`` event."""
        partial: list[str] = []
        watcher = self.env.watcher
        if watcher is not None:
            self.watch = watcher.watch(self)
        try:
            async for event in inner:
                if type(event) is Delta:
                    partial.append(event.text)
                yield event
        except (asyncio.CancelledError, GeneratorExit) as exc:
            given = exc.args[0] if isinstance(exc, asyncio.CancelledError) and exc.args else None
            reason = str(given) if isinstance(given, CancelReason) else "the caller went away"
            await self.close("interrupted", reason, "".join(partial))
            raise
        except AgentHostError as exc:
            await self.close("failed", exc.message, "".join(partial))
            yield ErrorEvent(exc, self.run.run_id)
        except Exception as exc:  # a provider adapter or tool bug must not kill the server
            error = ModelError(f"{type(exc).__name__}: {exc}")
            await self.close("failed", error.message, "".join(partial))
            yield ErrorEvent(error, self.run.run_id)
        finally:
            if self.watch is not None:
                self.watch.ended()

    async def close(self, status: RunStatus, error: str, partial: str) -> None:
        if self.run.status in ("completed", "failed", "interrupted", "awaiting_approval"):
            return
        self.run.status = status
        self.run.error = error
        self.run.finished_at = self.env.clock()
        messages = closing_messages(self.open_calls, self.run.run_id, status, error, partial)
        # The store may refuse even the closing write (the commit then marks the copy
        # stale): the run stays "running" there, and is closed as interrupted when
        # the session is next loaded, by whichever process loads it.
        with contextlib.suppress(Exception):
            await self.commit(messages)
        self.finished()

    def finished(self) -> None:
        observer = self.env.observer
        if observer is not None:
            observer.turn_finished(self.run, time.perf_counter() - self.started)

    def result(self, reply: str, pending: list[PendingApproval] | None = None) -> RunResult:
        key = self.live.key
        approvals = [p.call for p in pending or ()]
        return RunResult(
            reply,
            key.tenant_id,
            key.user_id,
            key.session_id,
            self.run.run_id,
            self.usage,
            self.run.status,
            approvals,
        )

    async def steps(self) -> AsyncIterator[Event]:
        env = self.env
        agent = env.agent
        schemas = [t.schema() for t in agent.tools]
        observer = env.observer
        for _ in range(agent.max_steps):
            request = ModelRequest(
                agent.instructions, model_window(self.live.window), schemas, self.settings
            )
            parts: list[str] = []
            calls: list[ToolCall] = []
            watch = self.watch
            if watch is not None:
                watch.model_started(request)
            began = time.perf_counter()
            async for chunk in self.model.stream(request):
                kind = type(chunk)
                if kind is TextChunk:
                    parts.append(chunk.text)  # type: ignore[union-attr]
                    yield Delta(chunk.text)  # type: ignore[union-attr]
                elif kind is ToolCall:
                    calls.append(chunk)  # type: ignore[arg-type]
                else:
                    self.usage.add(chunk)  # type: ignore[arg-type]
            if observer is not None:
                observer.model_called(self.model.name, time.perf_counter() - began)
            text = "".join(parts)
            if watch is not None:
                watch.model_finished(text, calls)
            assistant = Message("assistant", text, tuple(calls), run_id=self.run.run_id)
            if not calls:
                self.run.status = "completed"
                self.run.finished_at = env.clock()
                await self.commit([assistant])
                self.finished()
                yield Done(self.result(text))
                return
            await self.commit([assistant])
            self.open_calls = {c.id: c.name for c in calls}
            async for event in self.run_tools(calls):
                yield event
            if self.run.status == "awaiting_approval":
                return
        self.run.status = "completed"
        self.run.finished_at = env.clock()
        note = f"I stopped after {agent.max_steps} steps without reaching an answer."
        await self.commit(
            [Message("assistant", note, run_id=self.run.run_id, meta={"status": "step_limit"})]
        )
        self.finished()
        yield Done(self.result(note))

    async def run_tools(self, calls: list[ToolCall]) -> AsyncIterator[Event]:
        agent = self.env.agent
        messages: list[Message] = []
        waiting: list[ToolCall] = []
        state = self.live.state
        for call in calls:
            spec = agent.tool(call.name)
            if spec is not None and spec.requires_approval:
                waiting.append(call)
                continue
            yield ToolCallEvent(call)
            content, is_error, state = await self.call_tool(call, state)
            yield ToolResultEvent(call.id, call.name, content, is_error)
            messages.append(self.tool_message(call, content, is_error))
        new_state = state if state is not self.live.state else None
        if not waiting:
            await self.commit(messages, state=new_state)
            self.open_calls = {}
            return
        pending = [PendingApproval.of(c, self.run.run_id) for c in waiting]
        self.run.status = "awaiting_approval"
        await self.commit(messages, state=new_state, pending=pending)
        self.open_calls = {}
        for call in waiting:
            yield ApprovalRequired(call, self.run.run_id)
        self.finished()
        yield Done(self.result("", pending))

    def tool_message(self, call: ToolCall, content: str, is_error: bool) -> Message:
        return Message(
            "tool",
            content,
            tool_call_id=call.id,
            name=call.name,
            run_id=self.run.run_id,
            meta={"error": True} if is_error else None,
        )

    async def call_tool(
        self, call: ToolCall, state: dict[str, Any]
    ) -> tuple[str, bool, dict[str, Any]]:
        """Run one tool; errors become text for the model. Returns (content, is_error, state)."""
        spec = self.env.agent.tool(call.name)
        if spec is None:
            return f"error: unknown tool {call.name!r}", True, state
        key = self.live.key
        context = ToolContext(
            key.tenant_id,
            key.user_id,
            key.session_id,
            self.run.run_id,
            orjson.loads(orjson.dumps(state)) if spec.context_param else state,
        )
        watch = self.watch
        if watch is not None:
            watch.tool_started(call)
        try:
            content = await spec.call(call.arguments, context)
        except Exception as exc:
            content = f"error: {type(exc).__name__}: {exc}"
            if watch is not None:
                watch.tool_finished(call, content, True)
            return content, True, state
        if watch is not None:
            watch.tool_finished(call, content, False)
        if spec.context_param and context.state != state:
            return content, False, context.state
        return content, False, state
