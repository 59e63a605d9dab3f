"""The usage meter: turns, errors and tokens per tenant, user, agent, model and UTC day.

Counting is in memory on the turn's path (a dict update per model call and per
turn: no I/O); a background task adds what was counted to the ledger every
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
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agenthost.errors import AgentHostError, InvalidInput

if TYPE_CHECKING:
    from agenthost.messages import ToolCall
    from agenthost.models.base import ModelRequest
    from agenthost.turn import Turn

log = logging.getLogger("agenthost.usage")

DIMENSIONS = ("day", "tenant_id", "user_id", "agent", "model")
Dimension = Literal["day", "tenant_id", "user_id", "agent", "model"]
COUNTERS = ("turns", "errors", "input_tokens", "output_tokens")

Key = tuple[str, str, str, str, str]  # day, tenant, user, agent, model


@dataclass(slots=True)
class UsageRow:
    """Counters of one group; dimensions not grouped by are ``None``."""

    day: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    agent: str | None = None
    model: str | None = None
    turns: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: UsageRow) -> None:
        self.turns += other.turns
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: v
            for f in fields(self)
            if (v := getattr(self, f.name)) is not None or f.name not in DIMENSIONS
        }
        out["total_tokens"] = self.total_tokens
        return out


class UsageLedger(Protocol):
    """Where usage is kept: atomic increments, grouped reads."""

    shared: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        """Add each row's counters to its (day, tenant, user, agent, model) totals, once
        per ``batch`` id (a batch already added is skipped), atomically."""
        ...

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        """Totals of days ``since`` to ``until`` (inclusive, ``YYYY-MM-DD``), grouped."""
        ...


def group(
    rows: Sequence[UsageRow], group_by: Sequence[Dimension], *, keep_zero: bool = False
) -> list[UsageRow]:
    """Full-detail rows summed by ``group_by`` (for ledgers that cannot group themselves)."""
    out: dict[tuple[str | None, ...], UsageRow] = {}
    for row in rows:
        key = tuple(getattr(row, d) for d in group_by)
        target = out.get(key)
        if target is None:
            target = out[key] = UsageRow(**dict(zip(group_by, key, strict=True)))
        target.add(row)
    if not group_by and not out and keep_zero:
        return [UsageRow()]
    return [out[k] for k in sorted(out, key=lambda k: tuple(v or "" for v in k))]


def check_group_by(names: Sequence[str], allowed: Sequence[str] = DIMENSIONS) -> list[Dimension]:
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise InvalidInput(
            f"cannot group usage by {wrong[0]!r}; choose from {', '.join(allowed)}",
            field="group_by",
        )
    return list(dict.fromkeys(names))  # type: ignore[arg-type]


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


class _TurnUsage:
    """One turn's watch: tokens after each model call, the turn when it ends."""

    __slots__ = ("counted_in", "counted_out", "meter", "turn")

    def __init__(self, meter: UsageMeter, turn: Turn) -> None:
        self.meter = meter
        self.turn = turn
        self.counted_in = turn.usage.input_tokens  # a resumed run carries earlier usage
        self.counted_out = turn.usage.output_tokens

    def _tokens(self, turns: int, errors: int) -> None:
        turn = self.turn
        usage = turn.usage
        spent_in = usage.input_tokens - self.counted_in
        spent_out = usage.output_tokens - self.counted_out
        if not (spent_in or spent_out or turns):
            return
        self.counted_in, self.counted_out = usage.input_tokens, usage.output_tokens
        key = turn.run.key
        self.meter.record(
            key.tenant_id,
            key.user_id,
            turn.agent.name,  # the agent speaking (a hand-off changes it)
            turn.answered or turn.model.name,  # the model that answered (after any failover)
            turns=turns,
            errors=errors,
            input_tokens=max(0, spent_in),
            output_tokens=max(0, spent_out),
        )

    def model_started(self, request: ModelRequest) -> None:
        pass

    def model_finished(self, text: str, calls: Sequence[ToolCall]) -> None:
        self._tokens(0, 0)

    def tool_started(self, call: ToolCall) -> None:
        pass

    def tool_finished(self, call: ToolCall, content: str, is_error: bool) -> None:
        pass

    def ended(self) -> None:
        status = self.turn.run.status
        if status == "awaiting_approval":
            self._tokens(0, 0)
        else:
            self._tokens(1, 1 if status == "failed" else 0)


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
            from agenthost.usage.memory import MemoryUsageLedger

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

    # -- the turn's path -------------------------------------------------------------

    def watch(self, turn: Turn) -> _TurnUsage:
        return _TurnUsage(self, turn)

    def record(
        self,
        tenant_id: str,
        user_id: str,
        agent: str,
        model: str,
        *,
        turns: int = 0,
        errors: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        key = (utc_day(self.clock()), tenant_id, user_id, agent, model)
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
