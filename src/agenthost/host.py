"""The Host: runs turns of its agents for any number of tenants, users and sessions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal

from agenthost import reports
from agenthost.agent import Agent
from agenthost.agents import AgentSet, AgentsLike
from agenthost.config import (
    check_storable,
    merge_config,
    merge_patch,
    model_settings,
    validate_config,
)
from agenthost.context import context_source
from agenthost.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from agenthost.events import Done, ErrorEvent, Event, RunResult
from agenthost.keys import DEFAULT_ID, SessionKey, validate_id
from agenthost.live import LiveSession, LiveSessionCache
from agenthost.locks import Coordinator, LocalCoordinator
from agenthost.memory import Memories, host_memory_options
from agenthost.messages import Message
from agenthost.models import Model
from agenthost.models.failover import RetryPolicy
from agenthost.models.pool import ModelPool
from agenthost.models.providers import Provider, Providers
from agenthost.quotas import Admission, Quotas, admitted, settled
from agenthost.runs import Runner, RunOptions
from agenthost.session import Change, Sessions
from agenthost.stores import SessionStore, open_store
from agenthost.stores.base import RunRecord, SessionRecord
from agenthost.turn import Turn, TurnEnv, TurnObserver, new_run_id
from agenthost.upkeep import upkeep_for
from agenthost.usage import UsageMeter, erase_user_usage
from agenthost.watch import Watcher, combine

Policy = Literal["queue", "reject"]


class AllSessions:
    """``session_id=ALL_SESSIONS``: every session of the user (``size``, ``clear``)."""

    def __repr__(self) -> str:
        return "ALL_SESSIONS"


ALL_SESSIONS = AllSessions()
MAX_MESSAGE_CHARS = 200_000


def _check_message(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput("message must be a string", field="message")
    if not text.strip():
        raise InvalidInput("message must not be empty", field="message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise QuotaExceeded(f"message is longer than {MAX_MESSAGE_CHARS} characters")
    return text


class Host:
    """Runs turns; owns the per-key locks, the live-session cache and the sweeper.

    ``agent`` is one Agent, or several (a list, or a dict by name): the first, or
    ``default_agent``, answers sessions that name none; see :mod:`agenthost.agents`
    for which agent answers a session and :mod:`agenthost.handoffs` for transfers.
    ``policy`` decides what a second concurrent turn on one session does: wait its
    turn (``"queue"``) or fail at once with ``SessionBusy`` (``"reject"``).
    ``models`` is the allow-list a session may choose from besides the agents' own:
    names such as ``"deepseek:deepseek-chat"`` on ``providers`` (created on first
    use, one client per provider) or model objects; ``retry`` is how failing
    providers are retried before the next fallback model. ``quotas``, ``usage``, ``tracing``:
    :mod:`agenthost.quotas`, :mod:`agenthost.usage`, :mod:`agenthost.tracing` (off: ``None``).
    """

    def __init__(
        self,
        agent: AgentsLike | AgentSet,
        *,
        default_agent: str | None = None,
        store: SessionStore | str | None = None,
        policy: Policy = "queue",
        max_live_sessions: int = 10_000,
        session_ttl: float | None = 3600.0,
        cleanup_interval: float | None = 300.0,
        session_retention: float | None = None,
        models: Iterable[str | Model] = (),
        coordinator: Coordinator | None = None,
        observer: TurnObserver | None = None,
        providers: Providers | Iterable[Provider] | None = None,
        retry: RetryPolicy | None = None,
        turn_timeout: float | None = None,
        quotas: Quotas | None = None,
        usage: UsageMeter | None = None,
        tracing: Watcher | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        runs: RunOptions | None = None,
    ) -> None:
        if policy not in ("queue", "reject"):
            raise ValueError("policy must be 'queue' or 'reject'")
        if turn_timeout is not None and not turn_timeout > 0:
            raise ValueError("turn_timeout must be a positive number of seconds")
        self.turn_timeout = turn_timeout
        agents = agent if isinstance(agent, AgentSet) else AgentSet(agent, default=default_agent)
        self.agents = agents
        self.agent = agents.default
        if store is None:
            from agenthost.stores.memory import MemoryStore

            store = MemoryStore(max_messages=None)
        self.store: SessionStore = open_store(store) if isinstance(store, str) else store
        self.policy: Policy = policy
        self.cache = LiveSessionCache(max_live=max_live_sessions, ttl=session_ttl)
        self.cleanup_interval = cleanup_interval
        self.session_retention = session_retention
        self.coordinator: Coordinator = coordinator or LocalCoordinator()
        self.clock = clock
        self._sleep = sleep
        self.runtime = Sessions(
            self.store,
            window=agents.window,
            cache=self.cache,
            coordinator=self.coordinator,
            clock=clock,
        )
        # long-term memory (host.memories; the agents get the model's memory tools) and the
        # work after turns (compaction, memory extraction)
        self.memories = Memories(
            self.store, host_memory_options(agents), clock, self.start, self.cache
        )
        agents = self.agents = self.memories.for_agents(agents)
        self.agent = agents.default
        self.models = ModelPool(
            agents, default=agents.default, extra=models, providers=providers, retry=retry
        )
        self.default_model = self.models.default
        self.allowed_models = self.models.allowed
        self.quotas, self.usage = quotas, usage
        watcher = combine(usage, tracing)  # usage metering and spans follow each turn
        self._env = TurnEnv(
            self.agent,
            self.runtime,
            clock,
            observer,
            agents=agents,
            models=self.models.for_agent,
            context=context_source(self.memories, agents),
            watcher=watcher,
        )
        self.upkeep = upkeep_for(
            agents, self.runtime, self.memories, models=self.models, clock=clock, observer=observer
        )
        self._started = False
        self._starting = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self.sweeps = 0
        self.retention_deleted = 0
        self.runner = Runner(self, runs or RunOptions())  # background, followed, idempotent runs

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start the sweeper; safe to call from many first turns at once."""
        if self._started:
            return
        async with self._starting:
            if self._started:
                return
            await self.store.open()
            for part in (self.quotas, self.usage):
                if part is not None:
                    await part.open()
            self._started = True
            if self.cleanup_interval:
                self._sweeper = asyncio.create_task(self._sweep_forever(), name="agenthost-sweeper")

    async def close(self) -> None:
        await self.runner.close()  # runs still going store their interruption first
        await self.upkeep.close()
        await self.memories.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.models.aclose()  # the provider clients this host created
        for source in self.agents.tool_sources().values():  # MCP connections of this loop
            await source.aclose()
        if self._started:
            for part in (self.usage, self.quotas):  # usage first: it flushes what it holds
                if part is not None:
                    await part.close()
            await self.coordinator.close()
            await self.store.close()
            self._started = False

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- turns -------------------------------------------------------------------

    async def run(
        self,
        text: str,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
        request_id: str | None = None,
        message_meta: dict[str, Any] | None = None,
        agent: str | None = None,
        time_limit: float | None = None,
        admission: Admission | None = None,
    ) -> RunResult:
        """Run one turn and return its result; raises the typed error if it failed."""
        events = self.stream(
            text,
            user_id=user_id,
            session_id=session_id,
            tenant_id=tenant_id,
            config=config,
            run_id=run_id,
            request_id=request_id,
            message_meta=message_meta,
            agent=agent,
            time_limit=time_limit,
            admission=admission,
        )
        return await self._collect(events)

    def stream(
        self,
        text: str,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
        request_id: str | None = None,
        message_meta: dict[str, Any] | None = None,
        agent: str | None = None,
        time_limit: float | None = None,
        on_begin: Callable[[], None] | None = None,
        admission: Admission | None = None,
    ) -> AsyncIterator[Event]:
        """Run one turn, yielding its events; validation errors raise before anything is stored.

        ``agent`` names the agent the turn is addressed to (None: the session's active
        agent); see :meth:`AgentSet.choose` for a session that is with another agent.

        ``run_id`` names the run up front (protocol adapters hand it out before the
        turn starts); it must be fresh, e.g. from ``agenthost.turn.new_run_id()``.
        ``request_id`` is kept on the run record; ``message_meta`` (a JSON object)
        on the stored user message, e.g. a protocol's own message id. ``time_limit``
        (seconds) bounds this turn, within the agent's or Host's ``turn_timeout``: past
        it the turn stops, is stored as failed and ends with ``TurnTimeout``. ``on_begin``
        is called once the user's message and the running run are stored. Quotas are
        checked as the turn starts, unless ``admission`` (``Quotas.admit``) was taken before.
        """
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        _check_message(text)
        if run_id is not None:
            validate_id(run_id, "run_id")
        if request_id is not None:
            validate_id(request_id, "request_id")
        if message_meta is not None:
            if not isinstance(message_meta, dict):
                raise InvalidInput("message_meta must be a JSON object", field="message_meta")
            check_storable(message_meta, "message_meta")
        clean = (
            None if config is None else validate_config(config, allowed_models=self.allowed_models)
        )
        if agent is not None:
            self.agents.named(agent)
        if time_limit is not None and (
            isinstance(time_limit, bool)
            or not isinstance(time_limit, int | float)
            or not time_limit > 0
        ):
            raise InvalidInput("time_limit must be a positive number of seconds", field="timeout")
        return self._stream(
            key,
            text,
            clean,
            run_id,
            request_id,
            message_meta,
            agent,
            time_limit,
            on_begin,
            admission,
        )

    def _turn_seconds(self, agent: Agent, limit: float | None = None) -> float | None:
        """A turn's deadline: the caller's ``limit``, capped by the agent's or Host's
        ``turn_timeout``."""
        cap = agent.turn_timeout or self.turn_timeout
        if limit is None:
            return cap
        return float(limit) if cap is None else min(float(limit), cap)

    async def _stream(
        self,
        key: SessionKey,
        text: str,
        config: dict[str, Any] | None,
        run_id: str | None,
        request_id: str | None,
        meta: dict[str, Any] | None,
        agent: str | None = None,
        time_limit: float | None = None,
        on_begin: Callable[[], None] | None = None,
        admission: Admission | None = None,
    ) -> AsyncIterator[Event]:
        if not self._started:
            await self.start()
        sessions = self.runtime
        wait = self.policy == "queue"
        async with (
            admitted(self.quotas, key, admission, sessions.locks.hold(key, wait=wait)) as ticket,
            self.coordinator.hold(key, wait=wait),
        ):
            live = await sessions.live(key, create=True)
            assert live is not None
            try:
                for attempt in (1, 2):
                    if live.pending and sessions.shared and attempt == 1:
                        live = await self._reloaded(live)  # refuse on the truth, not a copy
                    if live.pending:
                        raise Conflict(
                            f"session {key.session_id!r} has {len(live.pending)} tool call(s) "
                            "waiting for approval; approve or deny them first"
                        )
                    merged = live.config if config is None else merge_config(live.config, config)
                    run = RunRecord(
                        run_id or new_run_id(), key, "running", self.clock(), request_id=request_id
                    )
                    try:
                        turn, recorded = Turn.addressed(self._env, live, merged, agent, run)
                        turn.limit(self._turn_seconds(turn.agent, time_limit))
                        new_config = recorded or (None if config is None else merged)
                        await turn.begin(text, config=new_config, meta=meta)
                        break
                    except Conflict:  # also: the copy says another agent has the session
                        if attempt == 2:
                            raise
                        live = await self._reloaded(live)  # another process wrote: start over
                if on_begin is not None:
                    on_begin()
                # aclosing: if our caller stops early, the turn closes (and stores its
                # interruption) before the session lock is released, not at GC time.
                async with contextlib.aclosing(settled(ticket, turn, turn.run_steps())) as events:
                    async for event in events:
                        yield event
                self.upkeep.after_turn(live)  # compaction, extraction: after the reply
            finally:
                sessions.release(live)

    async def _reloaded(self, live: LiveSession) -> LiveSession:
        fresh = await self.runtime.reload(live, create=True)
        assert fresh is not None
        return fresh

    async def run_stateless(
        self,
        messages: Sequence[Message],
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        config: dict[str, Any] | None = None,
        agent: str | None = None,
    ) -> RunResult:
        """:meth:`stream_stateless`, collected."""
        events = self.stream_stateless(
            messages,
            user_id=user_id,
            session_id=session_id,
            tenant_id=tenant_id,
            config=config,
            agent=agent,
        )
        return await self._collect(events)

    def stream_stateless(
        self,
        messages: Sequence[Message],
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        config: dict[str, Any] | None = None,
        agent: str | None = None,
    ) -> AsyncIterator[Event]:
        """Run one turn on exactly ``messages`` (the last is the user's input); store nothing.

        The agent's (``agent``, else the default's) model, instructions and tools as
        usual, on a throwaway session: no session lock, no live-session cache, nothing
        written to the store; a hand-off moves the rest of this one turn to its target.
        """
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        if not messages or messages[-1].role != "user":
            raise InvalidInput("the last message must be the user's", field="messages")
        _check_message(messages[-1].content)
        clean = validate_config(config or {}, allowed_models=self.allowed_models)
        chosen = self.agent if agent is None else self.agents.named(agent)
        return self._stream_stateless(key, list(messages), clean, chosen.name)

    async def _stream_stateless(
        self, key: SessionKey, messages: list[Message], config: dict[str, Any], agent: str
    ) -> AsyncIterator[Event]:
        from agenthost.stores.memory import MemoryStore

        now = self.clock()
        history = deque(messages[:-1])
        live = LiveSession(key, history, 0, len(history), {}, config, [], now, now)
        scratch = Sessions.scratch(MemoryStore(max_messages=None), len(messages), self.clock)
        chosen = self.agents.named(agent)
        model = self.models.for_agent(chosen, config)
        env = dataclasses.replace(self._env, sessions=scratch, context=None)  # only its own
        turn = Turn(env, live, model, model_settings(config), agent=chosen)
        await turn.begin(messages[-1].content)
        async with (
            admitted(self.quotas, key, None, session=False) as ticket,
            contextlib.aclosing(settled(ticket, turn, turn.run_steps())) as events,
        ):
            async for event in events:
                yield event

    async def approve(
        self,
        call_id: str,
        approved: bool,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> RunResult:
        """Approve or deny a pending tool call and continue its turn."""
        return await self._collect(
            self.approve_stream(
                call_id, approved, user_id=user_id, session_id=session_id, tenant_id=tenant_id
            )
        )

    def approve_stream(
        self,
        call_id: str,
        approved: bool,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> AsyncIterator[Event]:
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        validate_id(call_id, "call_id")
        return self._approve(key, call_id, bool(approved))

    async def _approve(self, key: SessionKey, call_id: str, approved: bool) -> AsyncIterator[Event]:
        if not self._started:
            await self.start()
        sessions = self.runtime
        wait = self.policy == "queue"
        async with (
            admitted(self.quotas, key, None, sessions.locks.hold(key, wait=wait)) as ticket,
            self.coordinator.hold(key, wait=wait),
        ):
            live = await sessions.live(key, create=False)
            if live is not None and sessions.shared:
                live = await sessions.reload(live, create=False)  # decide on the truth
            if live is None:
                raise NotFound(f"no pending approval {call_id!r} in session {key.session_id!r}")
            try:
                item = next((p for p in live.pending if p.call_id == call_id), None)
                if item is None:
                    raise NotFound(f"no pending approval {call_id!r} in session {key.session_id!r}")
                run = await self.store.get_run(item.run_id)
                if run is None:
                    run = RunRecord(item.run_id, key, "awaiting_approval", self.clock())
                config = live.config
                agent = self.agents.active(config)
                model = self.models.for_agent(agent, config)
                turn = Turn(self._env, live, model, model_settings(config), run, agent)
                turn.limit(self._turn_seconds(agent))
                resumed = settled(ticket, turn, turn.resume({call_id: approved}))
                async with contextlib.aclosing(resumed) as events:
                    async for event in events:
                        yield event
                self.upkeep.after_turn(live)
            finally:
                sessions.release(live)

    @staticmethod
    async def _collect(events: AsyncIterator[Event]) -> RunResult:
        result: RunResult | None = None
        error: ErrorEvent | None = None
        async for event in events:  # run to the end so the session lock is released
            if type(event) is Done:
                result = event.result
            elif type(event) is ErrorEvent:
                error = event
        if error is not None:
            raise error.error
        assert result is not None, "a turn ends with done or error"
        return result

    # -- sessions ----------------------------------------------------------------

    async def history(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Message]:
        """The session's stored messages, oldest first (paged by ``after_seq``/``limit``)."""
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        await self.start()
        return await self.store.messages(key, after_seq=after_seq, limit=limit)

    async def size(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str | AllSessions = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> int:
        """Messages stored in one session, or in all the user's (``session_id=ALL_SESSIONS``)."""
        await self.start()
        if isinstance(session_id, AllSessions):
            validate_id(tenant_id, "tenant_id")
            validate_id(user_id, "user_id")
            records = await self.store.sessions(tenant_id=tenant_id, user_id=user_id)
            return sum(r.message_count for r in records)
        record = await self.get_session(user_id=user_id, session_id=session_id, tenant_id=tenant_id)
        return 0 if record is None else record.message_count

    async def clear(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str | AllSessions = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> int:
        """Erase one session, or every session, the memory and the usage-ledger name of a
        user (``session_id=ALL_SESSIONS``, as :meth:`erase_user`); return sessions deleted.

        Erasure is immediate and final: it does not wait for a running turn, which is
        refused at its next write (it ends with ``SessionErased``); no process that
        cached the session can write it back.
        """
        validate_id(tenant_id, "tenant_id")
        validate_id(user_id, "user_id")
        one = None if isinstance(session_id, AllSessions) else validate_id(session_id, "session_id")
        await self.start()
        deleted = await self.runtime.erase(tenant_id=tenant_id, user_id=user_id, session_id=one)
        if one is None:  # the usage ledger keeps the tenant's totals, under "(erased)"
            await erase_user_usage(self.usage, tenant_id=tenant_id, user_id=user_id)
        return deleted

    async def erase_user(self, *, user_id: str, tenant_id: str = DEFAULT_ID) -> int:
        """Erase everything stored about a user: every session and their memory."""
        return await self.clear(user_id=user_id, tenant_id=tenant_id, session_id=ALL_SESSIONS)

    async def clear_all(self) -> int:
        """Delete every session of every tenant."""
        await self.start()
        return await self.runtime.erase(tenant_id=None, user_id=None)

    async def get_session(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> SessionRecord | None:
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        await self.start()
        snapshot = await self.store.load(key, window=1)
        return None if snapshot is None else snapshot.session

    async def create_session(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        state: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        agent: str | None = None,
    ) -> SessionRecord:
        """Create a session (or update its state/config if it exists) and return it."""
        return await self.update_session(
            user_id=user_id,
            session_id=session_id,
            tenant_id=tenant_id,
            state=state or {},
            config=config or {},
            agent=agent,
            create=True,
        )

    async def update_session(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        state: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        agent: str | None = None,
        create: bool = False,
    ) -> SessionRecord:
        """Merge-patch the session's state and/or config (``None`` values delete keys).

        ``agent`` moves the session to that agent (its active agent from now on).
        """
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        if state is not None:
            if not isinstance(state, dict):
                raise InvalidInput("state must be a JSON object", field="state")
            check_storable(state, "state")
        clean = (
            None if config is None else validate_config(config, allowed_models=self.allowed_models)
        )
        new = await self._patch(key, state, clean, create=create, agent=agent)
        return new

    async def _patch(
        self,
        key: SessionKey,
        state: dict[str, Any] | None,
        config: dict[str, Any] | None,
        *,
        create: bool,
        agent: str | None = None,
    ) -> SessionRecord:
        """Merge-patch state/config onto what the store holds (re-applied if it moved)."""
        moved = None if agent is None else self.agents.named(agent).name

        def change(live: LiveSession) -> Change:
            new_state = None if state is None else merge_patch(live.state, state)
            new_config = None if config is None else merge_config(live.config, config)
            if moved is not None:
                new_config = self.agents.moved(new_config or live.config, moved)
            return new_state, new_config

        await self.start()
        return await self.runtime.update(key, change, create=create)

    async def get_state(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> dict[str, Any]:
        record = await self.get_session(user_id=user_id, session_id=session_id, tenant_id=tenant_id)
        return {} if record is None else record.state

    async def update_state(
        self,
        patch: dict[str, Any],
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
    ) -> dict[str, Any]:
        """Merge-patch the session state (creating the session if needed); return the new state."""
        record = await self.update_session(
            user_id=user_id, session_id=session_id, tenant_id=tenant_id, state=patch, create=True
        )
        return record.state

    async def sessions(
        self,
        *,
        user_id: str | None = None,
        tenant_id: str | None = DEFAULT_ID,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        """Stored sessions of a user (or a tenant, or all when both are None), newest first."""
        if tenant_id is not None:
            validate_id(tenant_id, "tenant_id")
        if user_id is not None:
            validate_id(user_id, "user_id")
        await self.start()
        return await self.store.sessions(
            tenant_id=tenant_id, user_id=user_id, limit=limit, offset=offset
        )

    async def export_user(self, *, user_id: str, tenant_id: str = DEFAULT_ID) -> dict[str, Any]:
        """Everything stored about a user: sessions with messages, runs and summaries, and
        their memories."""
        return await reports.export_user(self, user_id=user_id, tenant_id=tenant_id)

    async def get_run(self, run_id: str, *, tenant_id: str | None = None) -> RunRecord | None:
        """A run record by id (None if unknown, or not of ``tenant_id`` when given)."""
        if not isinstance(run_id, str) or not run_id or len(run_id) > 255:
            return None  # no run has such an id
        await self.start()
        run = await self.store.get_run(run_id)
        if run is None or (tenant_id is not None and run.key.tenant_id != tenant_id):
            return None
        return run

    async def runs(
        self,
        *,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
        tenant_id: str = DEFAULT_ID,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Run records of a session, newest first."""
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        await self.start()
        return await self.store.runs(key, limit=limit)

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store (and the lock service) answer."""
        await self.start()
        await self.store.ping()
        coordinator_ping = getattr(self.coordinator, "ping", None)  # Redis/PostgreSQL locks
        if coordinator_ping is not None:
            await coordinator_ping()

    @property
    def live_count(self) -> int:
        """Sessions held in memory right now."""
        return len(self.cache)

    # -- lifecycle of live sessions -----------------------------------------------

    def evict(self, *, user_id: str, session_id: str, tenant_id: str = DEFAULT_ID) -> bool:
        """Drop an idle session from memory (it stays in the store)."""
        key = SessionKey.of(tenant_id=tenant_id, user_id=user_id, session_id=session_id)
        return self.cache.evict(key)

    async def cleanup(self) -> dict[str, int]:
        """Expire idle live sessions now and apply retention to the store."""
        expired = self.cache.sweep(self.clock())
        deleted = 0
        if self.session_retention is not None:
            before = self.clock() - self.session_retention
            while True:
                batch = await self.store.delete_idle(before=before, limit=100)
                deleted += batch
                if batch < 100:
                    break
                await asyncio.sleep(0)  # let turns run between batches
            self.retention_deleted += deleted
        runs_purged = await self.runner.purge()
        self.sweeps += 1
        return {"expired": expired, "deleted": deleted, "runs_purged": runs_purged}

    async def _sweep_forever(self) -> None:
        assert self.cleanup_interval
        while True:
            await self._sleep(self.cleanup_interval)
            with contextlib.suppress(Exception):
                await self.cleanup()

    async def stats(self) -> dict[str, Any]:
        await self.start()
        return await reports.stats(self)

    def live_sessions(self) -> list[dict[str, Any]]:
        return [{**s.info(), "agent": self.agents.active(s.config).name} for s in self.cache]

    @property
    def lock_count(self) -> int:
        """Per-key lock entries currently held or waited on (0 when idle)."""
        return len(self.runtime.locks)
