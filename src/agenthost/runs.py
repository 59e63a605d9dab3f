"""Runs that outlive their request: started in the background, followed and cancelled
from any process.

:class:`Runner` (``host.runs``) drives a turn in an asyncio task of its own (a
:class:`LiveRun`), so the turn does not depend on the request that started it:

- Each event gets a seq (1, 2, 3, ...). Local readers get it at once, from
  memory. A **published** run also appends its events to the run log in the
  store (:mod:`agenthost.stores.runlog`), in batches: every ``flush_interval``
  while it runs, and at its end before it is forgotten here. Another process
  serves ``follow(run_id, after=seq)`` from that log, polling it every
  ``poll_interval``; the log is the truth, so a follower resumes after any seq
  without losing or repeating an event.
- ``cancel(run_id)`` cancels the task if the run is here; otherwise it stores a
  cancel request, which the process running it polls for (every
  ``poll_interval``, one query for all of its runs, only while it has some and
  only when other processes share the store).
- A run started with an idempotency :class:`~agenthost.idempotency.Claim`
  stores its terminal event on the key's record when it ends, or releases the
  key if it never began.

The run record (``host.get_run``) stays what it was: the store's account of
the turn. The log adds what happened in between, for those who follow.
Runs that were not published (a plain request-response turn) can be read once
they finished (their closing event is rebuilt from the record and messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agenthost import idempotency
from agenthost.errors import (
    AgentHostError,
    ConfigError,
    ModelError,
    NotFound,
)
from agenthost.events import Done, ErrorEvent, Event, RunResult
from agenthost.idempotency import Claim
from agenthost.keys import SessionKey, validate_id
from agenthost.messages import Usage
from agenthost.runevents import RunEvent, closing
from agenthost.stores.base import RunRecord
from agenthost.stores.runlog import EventRow, RunLogStore
from agenthost.turn import CancelReason, new_run_id

if TYPE_CHECKING:
    from agenthost.host import Host

log = logging.getLogger("agenthost.runs")

CANCEL_REASON = "canceled by the client"
SHUTDOWN_REASON = "the server shut down"
FLUSH_BATCH = 500
QUIET_GRACE = 2.0
"""Seconds a published run's log may stay silent after its record says it ended before
a follower writes the closing event itself (its process died before publishing it)."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How runs are kept and followed (``Host(..., runs=RunOptions(...))``)."""

    idempotency_ttl: float = idempotency.DEFAULT_TTL
    """Seconds an idempotency key is remembered."""
    events_retention: float = 3600.0
    """Seconds a run log is kept after its last event."""
    poll_interval: float = 0.2
    """Seconds between reads of a followed run's log in another process, and between
    checks for cancel requests."""
    flush_interval: float = 0.05
    """Longest a published event waits before it is stored (others join its batch)."""
    cancel_wait: float = 10.0
    """Seconds ``cancel`` waits for a run in another process to end."""


@dataclass(frozen=True, slots=True)
class RunView:
    """What ``GET /v1/runs/{id}`` shows: the run's status and, once it ended, its result."""

    run_id: str
    key: SessionKey
    status: str
    record: RunRecord | None
    result: dict[str, Any] | None
    published: bool

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "run_id": self.run_id,
            "user_id": self.key.user_id,
            "session_id": self.key.session_id,
            "status": self.status,
            "started_at": record.started_at if record else None,
            "finished_at": record.finished_at if record else None,
            "error": record.error if record else None,
            "usage": (record.usage if record else Usage()).to_dict(),
            "request_id": record.request_id if record else None,
            "published": self.published,
            "result": self.result,
        }


FINISHED = frozenset({"completed", "failed", "interrupted", "awaiting_approval"})


class LiveRun:
    """A run driven by this process. Read it with :meth:`Runner.follow` or :meth:`result`.

    On the path of every request-response turn: what only some runs need (a
    waiter for its beginning, a wake-up for readers, a flush lock) is made on demand.
    """

    __slots__ = (
        "_cancelled",
        "_changed",
        "_flush_lock",
        "_flushes",
        "_pending",
        "_settled",
        "_timer",
        "began",
        "claim",
        "done",
        "first_seq",
        "history",
        "key",
        "partial",
        "published",
        "refusal",
        "run_id",
        "runs",
        "started",
        "task",
    )

    def __init__(
        self,
        runs: Runner,
        run_id: str,
        key: SessionKey,
        *,
        published: bool,
        claim: Claim | None = None,
        first_seq: int = 1,
    ) -> None:
        self.runs = runs
        self.run_id = run_id
        self.key = key
        self.published = published
        self.claim = claim
        self.first_seq = first_seq
        self.history: list[RunEvent] = []
        self.began = False
        self.refusal: AgentHostError | None = None
        self.started: asyncio.Future[None] | None = None  # made by Runner.start
        self.task: asyncio.Task[None] | None = None
        self.partial: list[str] = []
        self._changed: asyncio.Event | None = None  # made by a reader that waits
        self._pending: list[EventRow] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._cancelled = False
        self._settled: asyncio.Event | None = None  # made by a waiter
        self.done = False  # ended, and stored what it publishes

    @property
    def last(self) -> RunEvent | None:
        return self.history[-1] if self.history else None

    @property
    def ended(self) -> bool:
        last = self.last
        return last is not None and last.terminal

    def mark_began(self) -> None:
        self.began = True
        if self.started is not None and not self.started.done():
            self.started.set_result(None)

    def emit(self, data: dict[str, Any]) -> RunEvent:
        event = RunEvent(self.first_seq + len(self.history), data)
        self.history.append(event)
        if data.get("type") == "delta":
            self.partial.append(data.get("text", ""))
        changed = self._changed
        if changed is not None:  # readers wait: wake them (later ones make a new event)
            self._changed = None
            changed.set()
        if self.published:
            self._pending.append((event.seq, data))
            if self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.runs.options.flush_interval, self._flush_later)
        return event

    async def subscribe(self, after: int = 0) -> AsyncIterator[RunEvent]:
        """This phase's events with ``seq > after``, ending with its terminal event."""
        index = max(0, after + 1 - self.first_seq)
        while True:
            while index < len(self.history):
                event = self.history[index]
                index += 1
                yield event
                if event.terminal:
                    return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    async def result(self) -> RunEvent:
        """The terminal event (``done`` or ``error``), once the run ends."""
        async for event in self.subscribe(self.first_seq - 1):
            if event.terminal:
                return event
        raise AssertionError("a run ends with done or error")

    def cancel(self, reason: str = CANCEL_REASON) -> None:
        """Cancel the turn once (later calls, and calls after its end, do nothing)."""
        if self.task is None or self.task.done() or self.ended or self._cancelled:
            return
        if self.done:
            return
        self._cancelled = True
        self.task.cancel(CancelReason(reason))

    async def wait(self) -> None:
        """Until the run ended and stored what it publishes."""
        if self.done:
            return
        if self._settled is None:
            self._settled = asyncio.Event()
        await self._settled.wait()

    def settle(self) -> None:
        self.done = True
        if self._settled is not None:
            self._settled.set()

    # -- publishing --------------------------------------------------------------------

    def _flush_later(self) -> None:
        self._timer = None
        task = asyncio.create_task(self._flush_quietly())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_quietly(self) -> None:
        await self.flush()

    async def flush(self) -> bool:
        """Store what is pending; False if the store refused or failed (kept for later)."""
        if not self._pending:
            return True
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            store = self.runs.log_store
            options = self.runs.options
            while self._pending and self.published:
                batch = self._pending[:FLUSH_BATCH]
                try:
                    stored = await store.append_run_events(
                        self.run_id,
                        batch,
                        now=self.runs.clock(),
                        retention=options.events_retention,
                    )
                except AgentHostError as exc:
                    log.warning("could not publish events of run %s: %s", self.run_id, exc)
                    if self._timer is None and not self.ended:
                        loop = asyncio.get_running_loop()
                        self._timer = loop.call_later(1.0, self._flush_later)
                    return False
                if not stored:  # the log is gone (erased, purged): stop publishing
                    log.info("run %s: its log is gone; no longer published", self.run_id)
                    self.published = False
                    self._pending.clear()
                    return False
                del self._pending[: len(batch)]
            return True

    async def close(self) -> None:
        """After the terminal event: store everything that is pending, once more if need be."""
        if not self._pending and not self._flushes and self._timer is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not await self.flush() and self._pending:
            await asyncio.sleep(0.5)  # one retry: a blip of the store should not lose the end
            await self.flush()
        await asyncio.gather(*self._flushes, return_exceptions=True)


class Runner:
    """Starts, follows and cancels runs; one per Host (``host.runner``)."""

    def __init__(self, host: Host, options: RunOptions) -> None:
        self.host = host
        self.options = options
        self.clock: Callable[[], float] = host.clock
        self._local: dict[str, LiveRun] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closed = False
        self._checked: RunLogStore | None = None

    @property
    def log_store(self) -> RunLogStore:
        store: object = self.host.store
        checked = self._checked
        if checked is not None and checked is store:  # a runtime protocol check is slow
            return checked
        if not isinstance(store, RunLogStore):
            raise ConfigError(
                f"{type(store).__name__} keeps no run logs: background runs, idempotency keys "
                "and followed runs need a store that implements RunLogStore"
            )
        self._checked = store
        return store

    def local(self, run_id: str) -> LiveRun | None:
        """The run, if this process is running it."""
        return self._local.get(run_id)

    # -- idempotency ---------------------------------------------------------------------

    async def claim(
        self,
        idempotency_key: str,
        request: dict[str, Any],
        *,
        tenant_id: str,
        user_id: str,
        session_id: str,
        run_id: str | None = None,
    ) -> Claim:
        """Claim ``idempotency_key`` for ``request`` (what identifies it), or find its run.

        Owned: the caller runs the request as ``claim.run_id`` (pass the claim to
        :meth:`start`). Not owned: a retry; follow ``claim.run_id`` or use
        ``claim.result``. Raises ``IdempotencyKeyReused`` for a different request.
        """
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        await self.host.start()
        now = self.clock()
        mine = idempotency.new_record(
            key,
            idempotency_key,
            request,
            run_id=run_id or new_run_id(),
            now=now,
            ttl=self.options.idempotency_ttl,
        )
        held = await self.log_store.open_run_log(
            mine.run_id, key, now=now, retention=self.options.events_retention, claim=mine
        )
        if held is None:
            return Claim(mine, owned=True)
        idempotency.check_same_request(held, mine)
        return Claim(held, owned=False)

    # -- starting --------------------------------------------------------------------

    async def start(
        self,
        text: str,
        *,
        tenant_id: str,
        user_id: str,
        session_id: str,
        keep_refusal: bool = False,
        **options: Any,
    ) -> LiveRun:
        """Start a turn in a task of its own; return once it began (its message is stored).

        ``options``: ``config``, ``run_id``, ``request_id``, ``message_meta``,
        ``agent``, ``time_limit`` (as :meth:`Host.stream`), ``publish`` (store its
        events for followers elsewhere) and ``claim`` (an owned idempotency claim: the
        run is published under its run id and settles the key when it ends).
        Errors that stop it from beginning raise here: bad input at once, and a busy
        session or a pending approval too, unless ``keep_refusal`` (then the run ends
        with that error as its last event, and ``run.refusal`` says so).
        """
        live, events = await self._prepare(text, tenant_id, user_id, session_id, **options)
        live.started = started = asyncio.get_running_loop().create_future()
        self._register(live)
        live.task = asyncio.create_task(self._drive(live, events), name=f"run-{live.run_id}")
        await asyncio.shield(started)
        if live.refusal is not None and not keep_refusal:
            raise live.refusal
        return live

    async def run(
        self, text: str, *, tenant_id: str, user_id: str, session_id: str, **options: Any
    ) -> LiveRun:
        """:meth:`start` for a request that waits for the answer: the turn runs in the
        caller's own task (no task of its own to start and join) and this returns once
        it ended (``run.last`` is its last event). It can still be followed and
        cancelled from anywhere; a cancel ends it ``interrupted``, not the caller."""
        live, events = await self._prepare(text, tenant_id, user_id, session_id, **options)
        self._register(live)
        live.task = asyncio.current_task()
        await self._drive(live, events)
        if live.refusal is not None:
            raise live.refusal
        return live

    async def _prepare(
        self,
        text: str,
        tenant_id: str,
        user_id: str,
        session_id: str,
        *,
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
        request_id: str | None = None,
        message_meta: dict[str, Any] | None = None,
        agent: str | None = None,
        time_limit: float | None = None,
        publish: bool = False,
        claim: Claim | None = None,
        admission: Any = None,
    ) -> tuple[LiveRun, AsyncIterator[Event]]:
        """Validate the turn (errors raise before anything is stored) and open its log."""
        if claim is not None:
            if not claim.owned:
                raise ValueError("only an owned claim runs; follow the others")
            run_id, publish = claim.run_id, True
        run_id = run_id or new_run_id()
        key = SessionKey(tenant_id, user_id, session_id)  # checked by host.stream below
        live = LiveRun(self, run_id, key, published=publish, claim=claim)
        try:
            events = self.host.stream(
                text,
                tenant_id=tenant_id,
                user_id=user_id,
                session_id=session_id,
                config=config,
                run_id=run_id,
                request_id=request_id,
                message_meta=message_meta,
                agent=agent,
                time_limit=time_limit,
                on_begin=live.mark_began,
                admission=admission,
            )
            if publish and claim is None:
                await self.host.start()
                await self.log_store.open_run_log(
                    run_id, key, now=self.clock(), retention=self.options.events_retention
                )
        except BaseException:
            if claim is not None:
                await self._release(claim)
            raise
        return live, events

    async def adopt(
        self,
        events: AsyncIterator[Event],
        *,
        run_id: str,
        key: SessionKey,
        publish: bool = True,
    ) -> LiveRun:
        """Drive ``events`` of an existing run (an approval's continuation) as its next phase.

        A published run's log goes on after its last seq (followers resume across
        the pause); the run began long ago, so nothing waits for a beginning.
        """
        previous = self._local.get(run_id)
        if previous is not None:  # its last phase is still storing its end: let it finish
            await previous.wait()
        first = 1
        if publish:
            store = self.log_store
            now = self.clock()
            await store.open_run_log(run_id, key, now=now, retention=self.options.events_retention)
            opened = await store.read_run_log(run_id, after_seq=0, limit=0)
            first = 1 + (opened.header.last_seq if opened is not None else 0)
        live = LiveRun(self, run_id, key, published=publish, first_seq=first)
        live.mark_began()
        self._register(live)
        live.task = asyncio.create_task(self._drive(live, events), name=f"run-{live.run_id}")
        return live

    def _register(self, live: LiveRun) -> None:
        if self._closed:
            raise ConfigError("the host is shutting down")
        self._local[live.run_id] = live
        if self._poller is None and self.host.runtime.shared:
            self._poller = asyncio.create_task(self._poll_cancels(), name="agenthost-cancels")

    async def _drive(self, live: LiveRun, events: AsyncIterator[Event]) -> None:
        try:
            try:
                async for event in events:
                    live.emit(event.to_dict())
            finally:
                close = getattr(events, "aclose", None)
                if close is not None:  # on cancel: the turn stores its interruption now
                    await close()
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            given = exc.args[0] if exc.args else None
            reason = str(given) if isinstance(given, CancelReason) else "the caller went away"
            live.emit(await self._interrupted(live, reason))
        except AgentHostError as exc:  # before the turn began: busy, pending approval, ...
            if not live.began:
                live.refusal = exc
            live.emit(ErrorEvent(exc, live.run_id).to_dict())
        except Exception as exc:
            log.error("run %s failed: %s", live.run_id, type(exc).__name__, exc_info=exc)
            live.emit(ErrorEvent(ModelError("internal error"), live.run_id).to_dict())
        finally:
            if not live.ended:
                error = ModelError("the run ended without a result")
                live.emit(ErrorEvent(error, live.run_id).to_dict())
            if live.started is not None and not live.started.done():
                live.started.set_result(None)
            await self._settle(live)

    async def _interrupted(self, live: LiveRun, reason: str) -> dict[str, Any]:
        usage = Usage()
        with contextlib.suppress(AgentHostError):
            stored = await self.host.get_run(live.run_id)
            if stored is not None:
                usage = stored.usage
        key = live.key
        reply = "".join(live.partial)
        result = RunResult(
            reply, key.tenant_id, key.user_id, key.session_id, live.run_id, usage, "interrupted"
        )
        return {**Done(result).to_dict(), "error": reason}

    async def _settle(self, live: LiveRun) -> None:
        try:
            await live.close()
            claim = live.claim
            if claim is not None:
                last = live.last
                record = claim.record
                try:
                    if live.began and last is not None:
                        await self.log_store.finish_idempotency(
                            record.tenant_id,
                            record.user_id,
                            record.key,
                            run_id=live.run_id,
                            result=last.data,
                        )
                    else:
                        await self._release(claim)
                except AgentHostError as exc:
                    log.warning("could not settle the idempotency key of %s: %s", live.run_id, exc)
        finally:
            if self._local.get(live.run_id) is live:
                del self._local[live.run_id]
            live.settle()

    async def _release(self, claim: Claim) -> None:
        record = claim.record
        with contextlib.suppress(AgentHostError):
            await self.log_store.release_idempotency(
                record.tenant_id, record.user_id, record.key, run_id=record.run_id
            )

    # -- following -------------------------------------------------------------------

    async def follow(self, run_id: str, *, after: int = 0) -> AsyncIterator[RunEvent]:
        """The run's events with ``seq > after``, until its terminal event, from anywhere.

        From memory while this process runs it, else from the run log in the store;
        of a run that publishes nothing, only its end (once it ended). Raises
        ``NotFound`` for an unknown run.
        """
        validate_id(run_id, "run_id")
        while True:
            live = self._local.get(run_id)
            if live is not None and after >= live.first_seq - 1:
                async for event in live.subscribe(after):
                    yield event
                return
            async for event in self._from_log(run_id, after):
                yield event
                after = event.seq
                if event.terminal:
                    return
            live = self._local.get(run_id)
            if live is None or after < live.first_seq - 1:
                return  # read to the end of what there is

    async def so_far(self, run_id: str, *, after: int = 0) -> list[RunEvent]:
        """The run's events with ``seq > after`` that exist now (none if it publishes none)."""
        live = self._local.get(run_id)
        if live is not None and after >= live.first_seq - 1:
            return [event for event in live.history if event.seq > after]
        found = await self.log_store.read_run_log(run_id, after_seq=after)
        return [] if found is None else [RunEvent(seq, data) for seq, data in found.events]

    async def _from_log(self, run_id: str, after: int) -> AsyncIterator[RunEvent]:
        """Events from the store until the end (or until the run shows up here)."""
        store = self.log_store
        quiet_since: float | None = None
        while True:
            found = await store.read_run_log(run_id, after_seq=after, limit=FLUSH_BATCH)
            if found is None:
                async for event in self._unpublished(run_id, after):
                    yield event
                return
            for seq, data in found.events:
                event = RunEvent(seq, data)
                yield event
                after = seq
                if event.terminal:
                    return
            if len(found.events) == FLUSH_BATCH:
                continue
            if found.events:
                quiet_since = None
            now = time.monotonic()
            if quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET_GRACE:
                closing_event = await self._close_silent_log(run_id, found.header.last_seq)
                if closing_event is not None:
                    if closing_event.seq > after:
                        yield closing_event
                    return
                quiet_since = now
            live = self._local.get(run_id)
            if live is not None and after >= live.first_seq - 1:
                return  # it runs here now: follow() reads it from memory
            await asyncio.sleep(self.options.poll_interval)

    async def _close_silent_log(self, run_id: str, last_seq: int) -> RunEvent | None:
        """A log silent while its run's record says it ended: its process died between
        storing the end and publishing it. Publish the end rebuilt from the store (if
        nobody else did first: the append is a compare-and-set)."""
        record = await self.host.get_run(run_id)
        if record is None or record.status not in FINISHED or run_id in self._local:
            return None
        data = await self._closing(record)
        seq = last_seq + 1
        if await self.log_store.append_run_events(
            run_id, [(seq, data)], now=self.clock(), retention=self.options.events_retention
        ):
            return RunEvent(seq, data)
        return None

    async def _unpublished(self, run_id: str, after: int) -> AsyncIterator[RunEvent]:
        """A run without a log: only its end is known, once it ended (wait for it). The
        closing event follows whatever id the reader has (the runner's own stream had ids
        only it knew), so a reader always gets it."""
        while True:
            record = await self.host.get_run(run_id)
            if record is None:
                raise NotFound(f"run {run_id} not found")
            if record.status in FINISHED:
                yield RunEvent(after + 1, await self._closing(record))
                return
            await asyncio.sleep(self.options.poll_interval)

    async def _closing(self, record: RunRecord) -> dict[str, Any]:
        key = record.key
        t, u, s = key.tenant_id, key.user_id, key.session_id
        messages = await self.host.history(tenant_id=t, user_id=u, session_id=s)
        pending = []
        if record.status == "awaiting_approval":
            session = await self.host.get_session(tenant_id=t, user_id=u, session_id=s)
            pending = session.pending if session is not None else []
        return closing(record, messages, pending)

    async def view(self, run_id: str) -> RunView | None:
        """The run's status and result as the store (and this process) know them."""
        validate_id(run_id, "run_id")
        record = await self.host.get_run(run_id)
        live = self._local.get(run_id)
        result: dict[str, Any] | None = None
        published = live.published if live is not None else False
        key = record.key if record is not None else None
        if live is not None:
            key = live.key
            if live.ended and live.last is not None:
                result = live.last.data
        else:
            head = await self.log_store.read_run_log(run_id, after_seq=0, limit=0)
            if head is not None:
                published = True
                key = head.header.key
                last = head.header.last_seq
                tail = await self.log_store.read_run_log(run_id, after_seq=last - 1)
                if tail is not None and tail.events and RunEvent(*tail.events[-1]).terminal:
                    result = tail.events[-1][1]
        if key is None:
            return None
        if record is not None:
            status: str = record.status
            if status in FINISHED and (result is None or not _same_phase(result, status)):
                result = await self._closing(record)
            elif status not in FINISHED:
                result = None
        elif result is not None:
            status = "failed" if result.get("type") == "error" else result.get("status", "failed")
        else:
            status = "queued"
        return RunView(run_id, key, status, record, result, published)

    # -- cancelling --------------------------------------------------------------------

    async def cancel(self, run_id: str, *, reason: str = CANCEL_REASON) -> bool:
        """Cancel the run wherever it runs. True once it ended; False if it was still
        running in another process after ``cancel_wait`` seconds (the request stays)."""
        validate_id(run_id, "run_id")
        live = self._local.get(run_id)
        if live is not None:
            live.cancel(reason)
            await live.wait()
            return True
        await self.log_store.request_cancel(run_id, now=self.clock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.cancel_wait
        while True:
            view = await self.view(run_id)
            if view is None or view.status in FINISHED:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self.options.poll_interval)

    async def _poll_cancels(self) -> None:
        """Cancel the runs of this process that another process asked to cancel."""
        try:
            while self._local:
                await asyncio.sleep(self.options.poll_interval)
                running = [r for r, live in self._local.items() if not live.ended]
                if not running:
                    continue
                try:
                    wanted = await self.log_store.cancel_requests(running)
                except AgentHostError as exc:
                    log.warning("could not check for cancel requests: %s", exc)
                    continue
                for run_id in wanted:
                    live = self._local.get(run_id)
                    if live is not None:
                        live.cancel(CANCEL_REASON)
        finally:
            self._poller = None

    # -- upkeep ------------------------------------------------------------------------

    async def purge(self) -> int:
        """Delete expired run logs, idempotency records and cancel requests."""
        if not isinstance(self.host.store, RunLogStore):
            return 0
        return await self.log_store.purge_runs(now=self.clock())

    async def close(self) -> None:
        """Cancel what still runs here (each stores its interruption) and wait for it."""
        self._closed = True
        runs = list(self._local.values())
        for live in runs:
            live.cancel(SHUTDOWN_REASON)
        for live in runs:
            await live.wait()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


def _same_phase(result: dict[str, Any], status: str) -> bool:
    """Whether a stored terminal event describes the run's current status."""
    if result.get("type") == "error":
        return status == "failed"
    return bool(result.get("status") == status)
