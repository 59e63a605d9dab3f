"""A2A tasks are runs: a run's events, wherever they are read, as A2A task updates.

Every A2A task is a published run of ``host.runner`` (see :mod:`agenthost.runs`):
it runs in a task of its own in the process that started it, and its events go
to the run log in the store. So any server process can follow it
(``SubscribeToTask``), read it while it runs (``GetTask``) and cancel it
(``CancelTask``); the process running the turn is no longer special. A dropped
stream does not stop a task, and ``returnImmediately`` returns once the user's
message is stored. Shutting a server down cancels its running turns (each is
stored as interrupted).

:class:`TaskFold` folds a run's events into the task's state, reply so far and
status note, and turns each event into the A2A stream events it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from a2a.types import Message as A2AMessage
from a2a.types import Task, TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

from agenthost.events import Delta, Done, ErrorEvent, Handoff
from agenthost.protocols import a2a_mapping as am
from agenthost.runevents import RunEvent

StreamEvent = Task | TaskStatusUpdateEvent | TaskArtifactUpdateEvent
CANCEL_REASON = "canceled by the client"
STATE_OF_DONE = {
    "completed": TaskState.TASK_STATE_COMPLETED,
    "awaiting_approval": TaskState.TASK_STATE_INPUT_REQUIRED,
    "interrupted": TaskState.TASK_STATE_CANCELED,
    "failed": TaskState.TASK_STATE_FAILED,
    "running": TaskState.TASK_STATE_WORKING,
}


@dataclass(slots=True)
class TaskFold:
    """A task as its run's events so far describe it (one phase: an approval's answer
    starts the next one afresh)."""

    task_id: str
    context_id: str
    state: TaskState = TaskState.TASK_STATE_WORKING
    reply: list[str] = field(default_factory=list)
    note: A2AMessage | None = None
    ended: bool = False
    seq: int = 0

    def apply(self, event: RunEvent, at: float) -> list[StreamEvent]:
        """Take ``event`` into the task; return the A2A events it becomes."""
        self.seq = event.seq
        if self.ended and not event.terminal:  # an approval was answered: a new phase
            self.state, self.reply, self.note, self.ended = (
                TaskState.TASK_STATE_WORKING,
                [],
                None,
                False,
            )
        typed = event.event()
        task_id, context_id = self.task_id, self.context_id
        if isinstance(typed, Delta):
            if not typed.text:
                return []
            first = not self.reply
            self.reply.append(typed.text)
            return [
                am.artifact_event(task_id, context_id, typed.text, append=not first, last=False)
            ]
        if isinstance(typed, Handoff):  # another agent speaks from here on
            note = am.handoff_note(
                typed.source, typed.target, task_id=task_id, context_id=context_id
            )
            return [am.status_event(task_id, context_id, TaskState.TASK_STATE_WORKING, at, note)]
        if isinstance(typed, Done):
            result = typed.result
            self.state = STATE_OF_DONE.get(result.status, TaskState.TASK_STATE_COMPLETED)
            if result.status == "awaiting_approval":
                pending = [{**c.to_dict(), "run_id": result.run_id} for c in result.approvals]
                self.note = am.pending_note(pending, task_id=task_id, context_id=context_id)
            elif result.status == "interrupted":
                why = str(event.data.get("error") or CANCEL_REASON)
                self.note = am.error_note(why, task_id=task_id, context_id=context_id)
            return self._end(at)
        if isinstance(typed, ErrorEvent):
            self.state = TaskState.TASK_STATE_FAILED
            self.note = am.error_note(typed.error.message, task_id=task_id, context_id=context_id)
            return self._end(at)
        return []  # tool calls and approval requests show in the final status

    def _end(self, at: float) -> list[StreamEvent]:
        self.ended = True
        out: list[StreamEvent] = []
        if self.reply:
            out.append(am.artifact_event(self.task_id, self.context_id, "", append=True, last=True))
        out.append(am.status_event(self.task_id, self.context_id, self.state, at, self.note))
        return out

    def task(self, at: float, history: list[A2AMessage], history_length: int | None = None) -> Task:
        return am.build_task(
            task_id=self.task_id,
            context_id=self.context_id,
            state=self.state,
            at=at,
            history=history,
            reply="".join(self.reply),
            note=self.note,
            history_length=history_length,
        )
