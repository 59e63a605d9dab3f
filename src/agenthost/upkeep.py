"""Work a session needs after a turn, done off the user's wait: compaction and extraction.

:meth:`Upkeep.after_turn` is called by the Host when a turn's events are over
(the reply is already out). If the session is due for compaction, or the agent
extracts memories, a background task takes the session's lock, here and across
processes, as the next holder: it waits for a turn in progress, and a turn that
arrives meanwhile waits for it (or, under ``policy="reject"``, is refused as it
would be during another turn). Holding the lock, it reads the session afresh
when other processes share the store, extracts memories from the turns' user
messages (fenced by the session's revision), then compacts.

One task per session at a time (a session with work queued gets no second task:
the queued work covers the new turn too), at most ``concurrency`` at once per
process. A failure is logged and never reaches a user; ``drain`` waits for the
queue (tests, shutdown), ``close`` cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agenthost.errors import Conflict
from agenthost.keys import DEFAULT_ID, SessionKey
from agenthost.stores.base import MemoryFence

if TYPE_CHECKING:
    from agenthost.agent import Agent
    from agenthost.agents import AgentSet
    from agenthost.compaction import Compactor
    from agenthost.live import LiveSession
    from agenthost.memory import Memories
    from agenthost.models.base import Model
    from agenthost.models.pool import ModelPool
    from agenthost.session import Sessions

log = logging.getLogger("agenthost.upkeep")


class Upkeep:
    """``compactors`` and ``extractors`` (a model for a session config) by agent name; a
    session's active agent (``active``, from its config) decides what it gets."""

    def __init__(
        self,
        runtime: Sessions,
        *,
        active: Callable[[dict[str, Any]], Agent],
        compactors: dict[str, Compactor] | None = None,
        memories: Memories | None = None,
        extractors: dict[str, Callable[[dict[str, Any]], Model]] | None = None,
        concurrency: int = 4,
    ) -> None:
        self.runtime = runtime
        self.active = active
        self.compactors = compactors or {}
        self.extractors = extractors or {}
        self.memories = memories
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: dict[SessionKey, int] = {}  # key -> first seq not yet extracted
        self._tasks: dict[SessionKey, asyncio.Task[None]] = {}
        self.closed = False
        self.extracted = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return bool(self.compactors or self.extractors)

    def after_turn(self, live: LiveSession) -> None:
        """Queue the session's upkeep if it needs any (cheap when it does not)."""
        if self.closed or live.stale or not self.enabled:
            return
        name = self.active(live.config).name
        compactor = self.compactors.get(name)
        compact = compactor is not None and compactor.due(live)
        extract = name in self.extractors and live.key.user_id != DEFAULT_ID
        if not (compact or extract):
            return
        since = live.last_seq + 1
        if extract:
            since = next((m.seq for m in reversed(live.window) if m.role == "user"), since)
        key = live.key
        queued = self._pending.get(key)
        self._pending[key] = since if queued is None else min(queued, since)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._work(key), name=f"agenthost-upkeep {key}")

    def stats(self) -> dict[str, int]:
        compactors = self.compactors.values()
        return {
            "compactions": sum(c.succeeded for c in compactors),
            "compaction_failures": sum(c.failed for c in compactors),
            "memories_extracted": self.extracted,
            "upkeep_failures": self.failures,
            "upkeep_queued": len(self._tasks),
        }

    async def drain(self) -> None:
        """Wait until no upkeep is queued or running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        self.closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.clear()

    async def _work(self, key: SessionKey) -> None:
        try:
            while key in self._pending:
                try:
                    async with self._slots, self.runtime.locked(key, wait=True):
                        since = self._pending.pop(key, None)
                        if since is not None:
                            await self._upkeep(key, since)
                except asyncio.CancelledError:
                    raise
                except Conflict as exc:  # erased, or written elsewhere: the next turn will see
                    log.debug("upkeep of %s stopped: %s", key, exc)
                except Exception as exc:
                    self.failures += 1
                    log.warning("upkeep of %s failed: %s: %s", key, type(exc).__name__, exc)
        finally:
            # at once, not in a done-callback: a turn that ends in between must find no
            # task here and start one, or its work would wait for the next turn
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    async def _upkeep(self, key: SessionKey, since: int) -> None:
        runtime = self.runtime
        live = await runtime.live(key, create=False)
        if live is not None and runtime.shared:
            live = await runtime.reload(live, create=False)  # decide on the truth
        if live is None:
            return
        name = self.active(live.config).name
        try:
            extractor = self.extractors.get(name)
            if extractor is not None:
                try:
                    await self._extract(live, since, extractor)
                except Conflict:
                    raise
                except Exception as exc:  # compaction still runs
                    self.failures += 1
                    log.warning(
                        "memory extraction for %s failed: %s: %s", key, type(exc).__name__, exc
                    )
            compactor = self.compactors.get(name)
            if compactor is not None:
                for _round in range(5):  # a backlog takes a few rounds
                    if not await compactor.run(live):
                        break
        finally:
            runtime.release(live)

    async def _extract(
        self, live: LiveSession, since: int, extractor: Callable[[dict[str, Any]], Model]
    ) -> None:
        assert self.memories is not None
        messages = [m for m in live.window if m.role == "user" and m.seq >= since]
        if live.window and live.window[0].seq > since:  # fell out of the window already
            stored = await self.runtime.store.messages(live.key, after_seq=since - 1, limit=200)
            messages = [m for m in stored if m.role == "user"]
        model = extractor(live.config)
        fence = MemoryFence(live.key, live.revision)
        self.extracted += await self.memories.extract(live.key, messages, model, fence)


def upkeep_for(
    agents: AgentSet,
    runtime: Sessions,
    memories: Memories,
    *,
    models: ModelPool,
    clock: Callable[[], float],
    observer: Any = None,
) -> Upkeep:
    """The upkeep the agents' options ask for (an idle one if none)."""
    from agenthost.compaction import Compactor

    def chosen(agent: Agent, spec: Model | str | None) -> Callable[[dict[str, Any]], Model]:
        if spec is None:  # the session's own model (its chain, with fallbacks)
            return lambda config: models.for_agent(agent, config)
        if isinstance(spec, str):  # made (and closed) by the host's pool
            return lambda config: models.model(spec)
        return lambda config: spec

    compactors: dict[str, Compactor] = {}
    extractors: dict[str, Callable[[dict[str, Any]], Model]] = {}
    for agent in agents:
        if agent.compaction is not None:
            compactors[agent.name] = Compactor(
                agent.compaction,
                runtime,
                model_for=chosen(agent, agent.compaction.model),
                clock=clock,
                observer=observer,
            )
        memory = agent.long_term_memory
        if memory is not None and memory.extract:
            extractors[agent.name] = chosen(agent, memory.extract_model)
    return Upkeep(
        runtime,
        active=agents.active,
        compactors=compactors,
        memories=memories,
        extractors=extractors,
    )
