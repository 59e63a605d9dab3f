"""A2A tasks in flight in this process: turns driven in the background, fanned out to streams.

An A2A task outlives the request that started it: a client may send with
``returnImmediately``, drop its stream and ``SubscribeToTask`` again, or
``CancelTask`` from another connection. So each task's turn runs in its own
asyncio task here, publishing A2A events to whoever subscribes; the session
store stays the source of truth for every finished task.

Cancelling cancels that asyncio task: the turn loop gets one ``CancelledError``,
stores its closing message and marks the run ``interrupted`` (task state
``canceled``). Only the process running a turn can cancel it.

``close()`` cancels what is still running; the A2A router calls it on shutdown,
before the Host closes, so every interrupted run is stored as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from a2a.types import Message as A2AMessage
from a2a.types import Task, TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

from agenthost.errors import AgentHostError
from agenthost.events import ApprovalRequired, Delta, Done, ErrorEvent, Event, Handoff
from agenthost.keys import SessionKey
from agenthost.protocols import a2a_mapping as am
from agenthost.turn import CancelReason

log = logging.getLogger("agenthost.server")

StreamEvent = Task | TaskStatusUpdateEvent | TaskArtifactUpdateEvent
RECENT = 1000
"""Finished tasks kept in memory: those the store may not know (never started)."""
CANCEL_REASON = "canceled by the client"


@dataclass(eq=False, slots=True)
class LiveTask:
    """One task's turn as this process sees it: state so far, and its subscribers."""

    task_id: str
    key: SessionKey
    request: A2AMessage
    started_at: float
    state: TaskState = TaskState.TASK_STATE_WORKING
    reply: list[str] = field(default_factory=list)
    note: A2AMessage | None = None
    runner: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: list[asyncio.Queue[StreamEvent | None]] = field(default_factory=list)

    @property
    def context_id(self) -> str:
        return self.key.session_id

    def snapshot(self, history_length: int | None = None) -> Task:
        return am.build_task(
            task_id=self.task_id,
            context_id=self.context_id,
            state=self.state,
            at=time.time(),
            history=[self.request],
            reply="".join(self.reply),
            note=self.note,
            history_length=history_length,
        )

    def error(self, text: str) -> A2AMessage:
        return am.error_note(text, task_id=self.task_id, context_id=self.context_id)

    def publish(self, event: StreamEvent) -> None:
        for queue in self.subscribers:
            queue.put_nowait(event)

    def finish(self, state: TaskState, note: A2AMessage | None = None) -> None:
        if self.done.is_set():
            return
        self.state, self.note = state, note
        if self.reply:
            self.publish(
                am.artifact_event(self.task_id, self.context_id, "", append=True, last=True)
            )
        self.publish(am.status_event(self.task_id, self.context_id, state, time.time(), note))
        self.done.set()
        for queue in self.subscribers:
            queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Events from now on, ending after the final status (at once if already done)."""
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        if self.done.is_set():
            queue.put_nowait(None)
        self.subscribers.append(queue)

        async def events() -> AsyncIterator[StreamEvent]:
            while (event := await queue.get()) is not None:
                yield event

        try:
            yield events()
        finally:
            self.subscribers.remove(queue)


class LiveTasks:
    """Tasks running in this process, by task id (= run id), plus recently finished ones."""

    def __init__(self) -> None:
        self._running: dict[str, LiveTask] = {}
        self._recent: OrderedDict[str, LiveTask] = OrderedDict()
        self._closed = False

    def get(self, task_id: str) -> LiveTask | None:
        return self._running.get(task_id) or self._recent.get(task_id)

    def is_running(self, task_id: str) -> bool:
        return task_id in self._running

    def start(self, task: LiveTask, events: AsyncIterator[Event]) -> LiveTask:
        """Drive ``events`` (a started Host turn) in the background as ``task``."""
        if self._closed:
            raise RuntimeError("the server is shutting down")
        self._running[task.task_id] = task
        task.runner = asyncio.create_task(self._drive(task, events), name=f"a2a-{task.task_id}")
        return task

    async def cancel(self, task: LiveTask, reason: str = CANCEL_REASON) -> None:
        """Cancel a running task and wait until its turn has stored its end."""
        if task.runner is not None and not task.runner.done():
            task.runner.cancel(CancelReason(reason))
            await asyncio.wait({task.runner})

    async def close(self) -> None:
        self._closed = True
        for task in list(self._running.values()):
            await self.cancel(task, "the server shut down")

    async def _drive(self, task: LiveTask, events: AsyncIterator[Event]) -> None:
        failed = TaskState.TASK_STATE_FAILED
        try:
            try:
                async for event in events:
                    self._on_event(task, event)
            finally:
                await aclose(events)  # on cancel: the turn stores its interruption now
            if not task.done.is_set():  # a turn always ends with done or error; be safe
                task.finish(failed, task.error("the turn ended without a result"))
        except asyncio.CancelledError:
            task.finish(TaskState.TASK_STATE_CANCELED)
        except AgentHostError as exc:  # raised before the turn started: busy, pending approvals
            task.finish(failed, task.error(exc.message))
        except Exception as exc:
            log.error("a2a task %s failed: %s", task.task_id, type(exc).__name__, exc_info=exc)
            task.finish(failed, task.error("internal error"))
        finally:
            self._running.pop(task.task_id, None)
            self._recent[task.task_id] = task
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    @staticmethod
    def _on_event(task: LiveTask, event: Event) -> None:
        task_id, context_id = task.task_id, task.context_id
        kind = type(event)
        if kind is Delta:
            assert isinstance(event, Delta)
            if event.text:
                first = not task.reply
                task.reply.append(event.text)
                task.publish(
                    am.artifact_event(task_id, context_id, event.text, append=not first, last=False)
                )
        elif kind is ApprovalRequired:
            return  # the Done that follows carries every pending call
        elif kind is Handoff:
            assert isinstance(event, Handoff)
            working = TaskState.TASK_STATE_WORKING
            note = am.handoff_note(
                event.source, event.target, task_id=task_id, context_id=context_id
            )
            task.publish(am.status_event(task_id, context_id, working, time.time(), note))
        elif kind is Done:
            assert isinstance(event, Done)
            result = event.result
            if result.status == "awaiting_approval":
                pending = [{**c.to_dict(), "run_id": result.run_id} for c in result.approvals]
                note = am.pending_note(pending, task_id=task_id, context_id=context_id)
                task.finish(TaskState.TASK_STATE_INPUT_REQUIRED, note)
            else:
                task.finish(TaskState.TASK_STATE_COMPLETED)
        elif kind is ErrorEvent:
            assert isinstance(event, ErrorEvent)
            task.finish(TaskState.TASK_STATE_FAILED, task.error(event.error.message))


async def aclose(iterator: AsyncIterator[object]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
