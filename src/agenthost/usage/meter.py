"""The usage meter: turns, errors and tokens per tenant, user, agent, model and UTC day.

Counting is in memory on the turn's path (a dict update when the turn ends or
pauses: no I/O); a background task adds what was counted to the ledger every
``flush_interval`` seconds as atomic increments (``SET n = n + x``, ``HINCRBY``),
so any number of processes can meter into one ledger and the totals are exact.
Each flush is a batch with an id the ledger records in the same transaction: a
batch whose write failed is retried as it was, and one that had in fact been
written (the reply was lost) is not added twice. What a process counted but had
not flushed yet is lost if it is killed (at most ``flush_interval`` of usage; a
clean shutdown flushes). A query flushes this process's own counts first.

Tokens are attributed to the model that spent them (each model call); a turn is
counted once, when it finishes (a turn paused for approval counts when it is
answered), on the model of its last call; ``errors`` counts failed turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agenthost.errors import AgentHostError
from agenthost.usage.memory import MemoryUsageLedger
from agenthost.usage.rows import Dimension, Key, UsageLedger, UsageRow, utc_day

if TYPE_CHECKING:
    from agenthost.messages import ToolCall
    from agenthost.models.base import ModelRequest
    from agenthost.turn import Turn

log = logging.getLogger("agenthost.usage")


class _TurnUsage:
    """One turn's watch: its tokens per (agent, model) as model calls end, recorded in the
    meter once, when the turn ends (or pauses), rather than once per model call."""

    __slots__ = ("counted_in", "counted_out", "meter", "spent", "turn")

    def __init__(self, meter: UsageMeter, turn: Turn) -> None:
        self.meter = meter
        self.turn = turn
        self.counted_in = turn.usage.input_tokens  # a resumed run carries earlier usage
        self.counted_out = turn.usage.output_tokens
        self.spent: dict[tuple[str, str], list[int]] = {}  # (agent, model) -> [in, out]

    def _take(self) -> tuple[str, str]:
        """Attribute the tokens spent since the last call to the agent and model now."""
        turn = self.turn
        usage = turn.usage
        # the agent speaking (a hand-off changes it), the model that answered (failover)
        where = (turn.agent.name, turn.answered or turn.model.name)
        spent_in = usage.input_tokens - self.counted_in
        spent_out = usage.output_tokens - self.counted_out
        if spent_in or spent_out:
            self.counted_in, self.counted_out = usage.input_tokens, usage.output_tokens
            counts = self.spent.get(where)
            if counts is None:
                self.spent[where] = [max(0, spent_in), max(0, spent_out)]
            else:
                counts[0] += max(0, spent_in)
                counts[1] += max(0, spent_out)
        return where

    def model_started(self, request: ModelRequest) -> None:
        pass

    def model_finished(self, text: str, calls: Sequence[ToolCall]) -> None:
        self._take()

    def tool_started(self, call: ToolCall) -> None:
        pass

    def tool_finished(self, call: ToolCall, content: str, is_error: bool) -> None:
        pass

    def ended(self) -> None:
        last = self._take()
        status = self.turn.run.status
        turns = 0 if status == "awaiting_approval" else 1  # a paused turn counts when answered
        errors = 1 if status == "failed" else 0
        key = self.turn.run.key
        record = self.meter.record
        spent, self.spent = self.spent, {}
        for (agent, model), (tokens_in, tokens_out) in spent.items():
            if (agent, model) == last:
                continue
            record(key.tenant_id, key.user_id, agent, model, 0, 0, tokens_in, tokens_out)
        tokens_in, tokens_out = spent.get(last, (0, 0))
        if turns or tokens_in or tokens_out:  # the turn counts on its last agent and model
            record(key.tenant_id, key.user_id, *last, turns, errors, tokens_in, tokens_out)


Listener = Callable[[str, str, str, UsageRow], None]
"""Called with (tenant, user, agent, counters) as usage is recorded (Prometheus)."""


class UsageMeter:
    """Counts usage in memory and adds it to a :class:`UsageLedger` in the background.

    A :class:`~agenthost.watch.Watcher`: give it to the Host (``Host(usage=meter)``).
    """

    def __init__(
        self,
        ledger: UsageLedger | None = None,
        *,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ledger is None:
            ledger = MemoryUsageLedger()
        self.ledger = ledger
        self.flush_interval = flush_interval
        self.clock = clock
        self.listeners: list[Listener] = []
        self._pending: dict[Key, list[int]] = {}
        self._unsent: list[tuple[str, list[UsageRow]]] = []  # batches to (re)send, in order
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._opened = False
        self._day_number = -1
        self._day = ""

    # -- the turn's path -------------------------------------------------------------

    def watch(self, turn: Turn) -> _TurnUsage:
        return _TurnUsage(self, turn)

    def record(
        self,
        tenant_id: str,
        user_id: str,
        agent: str,
        model: str,
        turns: int = 0,
        errors: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        now = self.clock()
        day_number = int(now // 86400)  # POSIX time has no leap seconds: exact UTC days
        if day_number != self._day_number:
            self._day_number, self._day = day_number, utc_day(now)
        key = (self._day, tenant_id, user_id, agent, model)
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = [0, 0, 0, 0]
        counts[0] += turns
        counts[1] += errors
        counts[2] += input_tokens
        counts[3] += output_tokens
        if self.listeners:
            row = UsageRow(
                None, None, None, None, model, turns, errors, input_tokens, output_tokens
            )
            for listener in self.listeners:
                listener(tenant_id, user_id, agent, row)

    # -- the ledger ------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        await self.ledger.open()
        if self.flush_interval:
            self._task = asyncio.create_task(self._flush_forever(), name="usage-flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()  # a flush in progress finishes: it is shielded
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._opened:
            try:
                await self.flush()
            except AgentHostError as exc:
                lost = sum(len(rows) for _, rows in self._unsent)
                log.warning("usage of %d groups not flushed at shutdown: %s", lost, exc)
            await self.ledger.close()
            self._opened = False

    async def flush(self) -> int:
        """Send what was counted to the ledger now; return the groups written.

        A batch that fails stays queued, with its id, and is sent first next time.
        """
        async with self._flushing:
            if self._pending:
                pending, self._pending = self._pending, {}
                rows = [UsageRow(*key, *counts) for key, counts in sorted(pending.items())]
                self._unsent.append((os.urandom(12).hex(), rows))
            written = 0
            while self._unsent:
                batch, rows = self._unsent[0]
                await self.ledger.add(rows, batch=batch)
                self._unsent.pop(0)
                written += len(rows)
            return written

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                # shielded: cancelling the loop (at shutdown) never cuts a write in half
                await asyncio.shield(self.flush())
            except AgentHostError as exc:
                log.warning("could not flush usage (will retry): %s", exc)

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        """Totals from the ledger (this process's counts flushed first)."""
        await self.flush()
        return await self.ledger.query(
            since=since, until=until, tenant_id=tenant_id, user_id=user_id, group_by=group_by
        )
