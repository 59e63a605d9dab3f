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
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from agenthost import handoffs
from agenthost.agent import Agent
from agenthost.agents import AGENT_KEY, AgentSet, entry_name, with_agent
from agenthost.config import model_settings
from agenthost.context import ContextSource, TurnContext
from agenthost.context import model_window as model_window  # where it used to live
from agenthost.errors import AgentHostError, ModelError, TurnTimeout
from agenthost.events import (
    ApprovalRequired,
    Delta,
    Done,
    ErrorEvent,
    Event,
    Handoff,
    RunResult,
    RunStatus,
    ToolCallEvent,
    ToolResultEvent,
)
from agenthost.live import LiveSession
from agenthost.messages import Message, ToolCall, closing_messages
from agenthost.models.base import (
    Model,
    ModelRequest,
    ModelSettings,
    Served,
    TextChunk,
)
from agenthost.session import Sessions
from agenthost.stores.base import PendingApproval, RunRecord
from agenthost.tools import Tool, ToolContext

if TYPE_CHECKING:
    from agenthost.watch import TurnWatch, Watcher


class TurnObserver(Protocol):
    """Hooks for metrics and logs; called synchronously, so keep them cheap."""

    def model_called(self, model: str, seconds: float, agent: str) -> None: ...

    def turn_finished(self, run: RunRecord, seconds: float, agent: str) -> None: ...

    def handed_off(self, source: str, target: str) -> None: ...


@dataclass(slots=True)
class TurnEnv:
    """What every turn of a Host shares. ``agent`` is the default agent; with ``agents``
    and ``models`` (agent, session config -> model) a turn can hand off to another."""

    agent: Agent
    sessions: Sessions
    clock: Callable[[], float]
    observer: TurnObserver | None = None
    agents: AgentSet | None = None
    models: Callable[[Agent, dict[str, Any]], Model] | None = None
    context: ContextSource | None = None  # memories and summary before the window
    watcher: Watcher | None = None  # usage metering, tracing (agenthost.watch)


class CancelReason(str):
    """Why a turn was cancelled on purpose, stored as its run's error.

    ``asyncio_task.cancel(CancelReason("canceled by the client"))``; a plain
    cancellation is recorded as "the caller went away".
    """


def new_run_id() -> str:
    return "run_" + os.urandom(12).hex()


class _Alarm:
    """The turn's deadline over one model call: one timer for the call, not a timeout per
    chunk (a streamed reply has hundreds). When it fires while a chunk is awaited it
    cancels that wait (:meth:`ours` then tells that cancellation from any other); when it
    fires while the consumer holds a chunk, the call ends before the next wait."""

    __slots__ = ("cancelled", "cancelling", "fired", "handle", "task", "waiting")

    def __init__(self, deadline: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.cancelling = task.cancelling()
        self.waiting = True
        self.fired = self.cancelled = False
        self.handle = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self.fired = True
        if self.waiting:
            self.cancelled = True
            self.task.cancel()

    def ours(self) -> bool:
        return self.cancelled and self.task.uncancel() <= self.cancelling


class Turn:
    """One run on one live session; the caller holds the session's lock."""

    __slots__ = (
        "agent",
        "answered",
        "context",
        "deadline",
        "env",
        "handoffs",
        "live",
        "model",
        "open_calls",
        "run",
        "settings",
        "started",
        "switch",
        "timeout",
        "tools",
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
        agent: Agent | None = None,
    ) -> None:
        self.env = env
        self.live = live
        self.agent = agent or env.agent  # the agent speaking now; a hand-off replaces it
        self.model = model
        self.answered: str | None = None  # the model that produced the last reply
        self.handoffs = 0
        self.switch: str | None = None  # a transfer decided in this step
        self.settings = settings
        self.started = time.perf_counter()
        self.run = run or RunRecord(new_run_id(), live.key, "running", env.clock())
        self.usage = self.run.usage
        self.open_calls: dict[str, str] = {}
        self.watch: TurnWatch | None = None
        self.timeout: float | None = None
        self.deadline: float | None = None  # event-loop time the turn must end by
        self.context: TurnContext | None = None  # what the speaking agent sees before the window
        self.tools: tuple[Agent, Mapping[str, Tool], list[dict[str, Any]]] | None = None

    def limit(self, seconds: float | None) -> None:
        """Bound the rest of the turn (model and tool calls) to ``seconds`` from now."""
        if seconds is not None:
            self.timeout = seconds
            self.deadline = asyncio.get_running_loop().time() + seconds

    def expired(self) -> TurnTimeout:
        return TurnTimeout(
            f"the turn took longer than its deadline of {self.timeout:g}s and was stopped"
        )

    @classmethod
    def addressed(
        cls,
        env: TurnEnv,
        live: LiveSession,
        config: dict[str, Any],
        agent: str | None,
        run: RunRecord,
    ) -> tuple[Turn, dict[str, Any] | None]:
        """The turn of the agent that answers ``live`` under session ``config`` (see
        :meth:`AgentSet.choose`), and the config to store with its first write when the
        session's agent is recorded now (else None)."""
        assert env.agents is not None and env.models is not None
        choice = env.agents.choose(config, agent)
        if choice.record is not None:
            config = {**config, AGENT_KEY: choice.record}
        model = env.models(choice.agent, config)
        turn = cls(env, live, model, model_settings(config), run, choice.agent)
        return turn, config if choice.record is not None else None

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
        meta = {**meta, "agent": self.agent.name} if meta else {"agent": self.agent.name}
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
            observer.turn_finished(self.run, time.perf_counter() - self.started, self.agent.name)

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
            self.agent.name,
            self.answered,
        )

    async def toolset(self) -> tuple[Mapping[str, Tool], list[dict[str, Any]]]:
        """The speaking agent's tools for this caller (its own and its MCP servers'), and the
        schemas its model sees (with its transfer tools): once per turn and agent."""
        agent = self.agent
        cached = self.tools
        if cached is not None and cached[0] is agent:
            return cached[1], cached[2]
        env = self.env
        schemas = env.agents.schemas(agent) if env.agents else [t.schema() for t in agent.tools]
        key = self.live.key
        context = ToolContext(key.tenant_id, key.user_id, key.session_id, self.run.run_id)
        tools = await agent.toolset(context)
        if agent.mcp:
            taken = {s["function"]["name"] for s in schemas}
            schemas = schemas + [t.schema() for name, t in tools.items() if name not in taken]
        self.tools = (agent, tools, schemas)
        return tools, schemas

    async def steps(self) -> AsyncIterator[Event]:
        env = self.env
        observer = env.observer
        step = 0
        while step < self.agent.max_steps:
            step += 1
            agent = self.agent
            speaker = agent.name if env.agents is not None and len(env.agents) > 1 else None
            context = self.context
            if env.context is not None and (context is None or context.agent != agent.name):
                context = self.context = await env.context(self.live, agent)  # once an agent
            request = ModelRequest(
                agent.instructions,
                model_window(self.live.window, agent.history_window)
                if context is None
                else context.messages(self.live.window, agent.history_window),
                (await self.toolset())[1],
                self.settings,
            )
            parts: list[str] = []
            calls: list[ToolCall] = []
            watch = self.watch
            if watch is not None:
                watch.model_started(request)
            began = time.perf_counter()
            self.answered = self.model.name
            chunks = self.model.stream(request)
            alarm = None if self.deadline is None else _Alarm(self.deadline)
            try:
                async for chunk in chunks:
                    if alarm is not None:
                        alarm.waiting = False
                    kind = type(chunk)
                    if kind is TextChunk:
                        parts.append(chunk.text)  # type: ignore[union-attr]
                        yield Delta(chunk.text, speaker)  # type: ignore[union-attr]
                    elif kind is ToolCall:
                        calls.append(chunk)  # type: ignore[arg-type]
                    elif kind is Served:
                        self.answered = chunk.model  # type: ignore[union-attr]
                    else:
                        self.usage.add(chunk)  # type: ignore[arg-type]
                    if alarm is not None:
                        if alarm.fired:  # while the consumer held the chunk
                            raise self.expired()
                        alarm.waiting = True
            except BaseException as exc:
                if alarm is None:
                    raise
                alarm.handle.cancel()
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()
                if isinstance(exc, asyncio.CancelledError) and alarm.ours():
                    raise self.expired() from None
                raise
            if alarm is not None:
                alarm.handle.cancel()
            if observer is not None:
                observer.model_called(self.answered, time.perf_counter() - began, agent.name)
            text = "".join(parts)
            if watch is not None:
                watch.model_finished(text, calls)
            meta = {"agent": agent.name, "model": self.answered}
            assistant = Message("assistant", text, tuple(calls), run_id=self.run.run_id, meta=meta)
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
            if self.agent is not agent:
                step = 0  # the new agent gets its own max_steps; MAX_HANDOFFS bounds the rest
        self.run.status = "completed"
        self.run.finished_at = env.clock()
        note = f"I stopped after {self.agent.max_steps} steps without reaching an answer."
        meta = {"status": "step_limit", "agent": self.agent.name}
        await self.commit([Message("assistant", note, run_id=self.run.run_id, meta=meta)])
        self.finished()
        yield Done(self.result(note))

    async def run_tools(self, calls: list[ToolCall]) -> AsyncIterator[Event]:
        agent = self.agent
        messages: list[Message] = []
        waiting: list[ToolCall] = []
        state = self.live.state
        self.switch = None
        tools, _ = await self.toolset()
        approvals = any((t := tools.get(c.name)) and t.requires_approval for c in calls)
        for call in calls:
            target = handoffs.target_of(call, agent) if agent.handoffs else None
            if target is not None:
                yield ToolCallEvent(call)
                content, is_error = self.transfer(target, waiting=approvals)
                yield ToolResultEvent(call.id, call.name, content, is_error)
                message = self.tool_message(call, content, is_error)
                if not is_error and message.meta is not None:
                    message.meta["handoff"] = {"from": agent.name, "to": target}
                messages.append(message)
                continue
            spec = tools.get(call.name)
            if spec is not None and spec.requires_approval:
                waiting.append(call)
                continue
            yield ToolCallEvent(call)
            content, is_error, state = await self.call_tool(call, state)
            yield ToolResultEvent(call.id, call.name, content, is_error)
            messages.append(self.tool_message(call, content, is_error))
        new_state = state if state is not self.live.state else None
        config = self.transferred_config()
        if not waiting:
            await self.commit(messages, state=new_state, config=config)
            self.open_calls = {}
            async for event in self.hand_over():
                yield event
            return
        pending = [PendingApproval.of(c, self.run.run_id) for c in waiting]
        self.run.status = "awaiting_approval"
        await self.commit(messages, state=new_state, config=config, pending=pending)
        self.open_calls = {}
        async for event in self.hand_over():
            yield event
        for call in waiting:
            yield ApprovalRequired(call, self.run.run_id)
        self.finished()
        yield Done(self.result("", pending))

    # -- hand-offs (see agenthost.handoffs) --------------------------------------------

    def transfer(self, target: str, *, waiting: bool) -> tuple[str, bool]:
        """Decide a transfer call: the tool result, and whether it is an error."""
        refused = handoffs.refusal(count=self.handoffs, already=self.switch, waiting=waiting)
        if refused is not None:
            return refused, True
        self.switch = target
        return handoffs.note(self.agent.name, target), False

    def transferred_config(self) -> dict[str, Any] | None:
        """The session config naming the new active agent, stored with the transfer."""
        if self.switch is None:
            return None
        config = self.live.config
        return with_agent(config, self.switch, entry_name(config) or self.agent.name)

    async def hand_over(self) -> AsyncIterator[Event]:
        """After the transfer is stored: the new agent (and its model) speaks from now on."""
        target = self.switch
        if target is None:
            return
        self.switch = None
        env = self.env
        assert env.agents is not None and env.models is not None
        source = self.agent.name
        self.agent = env.agents.named(target)
        self.model = env.models(self.agent, self.live.config)
        self.handoffs += 1
        if env.observer is not None:
            env.observer.handed_off(source, target)
        yield Handoff(source, target, self.run.run_id)

    def tool_message(self, call: ToolCall, content: str, is_error: bool) -> Message:
        meta: dict[str, Any] = {"agent": self.agent.name}
        if is_error:
            meta["error"] = True
        return Message(
            "tool",
            content,
            tool_call_id=call.id,
            name=call.name,
            run_id=self.run.run_id,
            meta=meta,
        )

    async def call_tool(
        self, call: ToolCall, state: dict[str, Any]
    ) -> tuple[str, bool, dict[str, Any]]:
        """Run one tool; errors become text for the model. Returns (content, is_error, state)."""
        spec = (await self.toolset())[0].get(call.name)
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
            if self.deadline is None:
                content = await spec.call(call.arguments, context)
            else:
                timer = asyncio.timeout_at(self.deadline)
                try:
                    async with timer:
                        content = await spec.call(call.arguments, context)
                except TimeoutError:
                    if timer.expired():
                        raise self.expired() from None
                    raise
        except TurnTimeout:
            raise
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
