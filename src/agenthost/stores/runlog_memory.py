"""The run-log protocol (:mod:`agenthost.stores.runlog`) in process memory, for MemoryStore."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agenthost.keys import SessionKey
from agenthost.stores.runlog import (
    CANCEL_REQUEST_TTL,
    EventRow,
    IdempotencyRecord,
    RunLog,
    RunLogHeader,
)


@dataclass(slots=True)
class _Log:
    header: RunLogHeader
    events: list[EventRow] = field(default_factory=list)


class MemoryRunLog:
    """Mixed into :class:`~agenthost.stores.memory.MemoryStore`; every step is atomic
    because nothing in it awaits."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._keys: dict[tuple[str, str, str], IdempotencyRecord] = {}
        self._cancels: dict[str, float] = {}

    async def open_run_log(
        self,
        run_id: str,
        key: SessionKey,
        *,
        now: float,
        retention: float,
        claim: IdempotencyRecord | None = None,
    ) -> IdempotencyRecord | None:
        if claim is not None:
            slot = (claim.tenant_id, claim.user_id, claim.key)
            held = self._keys.get(slot)
            if held is not None and held.expires_at > now:
                return held
            self._keys[slot] = claim.with_result(None)
        if run_id not in self._logs:
            self._logs[run_id] = _Log(RunLogHeader(run_id, key, 0, now, now + retention))
        return None

    async def append_run_events(
        self, run_id: str, events: Sequence[EventRow], *, now: float, retention: float
    ) -> bool:
        log = self._logs.get(run_id)
        if not events:
            return log is not None
        if log is None or log.header.last_seq != events[0][0] - 1:
            return False
        log.events.extend((seq, copy.deepcopy(data)) for seq, data in events)
        header = log.header
        log.header = RunLogHeader(run_id, header.key, events[-1][0], now, now + retention)
        return True

    async def read_run_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> RunLog | None:
        log = self._logs.get(run_id)
        if log is None:
            return None
        rows = [(seq, copy.deepcopy(data)) for seq, data in log.events[max(after_seq, 0) :]]
        return RunLog(log.header, rows if limit is None else rows[:limit])

    async def finish_idempotency(
        self, tenant_id: str, user_id: str, key: str, *, run_id: str, result: dict[str, Any]
    ) -> None:
        slot = (tenant_id, user_id, key)
        held = self._keys.get(slot)
        if held is not None and held.run_id == run_id:
            self._keys[slot] = held.with_result(copy.deepcopy(result))

    async def release_idempotency(
        self, tenant_id: str, user_id: str, key: str, *, run_id: str
    ) -> None:
        slot = (tenant_id, user_id, key)
        held = self._keys.get(slot)
        if held is not None and held.run_id == run_id:
            del self._keys[slot]

    async def request_cancel(self, run_id: str, *, now: float) -> None:
        self._cancels.setdefault(run_id, now)

    async def cancel_requests(self, run_ids: Sequence[str]) -> set[str]:
        return {r for r in run_ids if r in self._cancels}

    async def purge_runs(self, *, now: float) -> int:
        doomed = [r for r, log in self._logs.items() if log.header.expires_at < now]
        for run_id in doomed:
            del self._logs[run_id]
        for slot in [s for s, r in self._keys.items() if r.expires_at < now]:
            del self._keys[slot]
        before = now - CANCEL_REQUEST_TTL
        for run_id in [r for r, at in self._cancels.items() if at < before]:
            del self._cancels[run_id]
        return len(doomed)

    def _erase_runs(
        self, tenant_id: str | None, user_id: str | None, session_id: str | None
    ) -> None:
        """Drop the run logs and idempotency records of a session scope (erasure)."""

        def inside(t: str, u: str, s: str) -> bool:
            return (
                (tenant_id is None or t == tenant_id)
                and (user_id is None or u == user_id)
                and (session_id is None or s == session_id)
            )

        for run_id, log in list(self._logs.items()):
            key = log.header.key
            if inside(key.tenant_id, key.user_id, key.session_id):
                del self._logs[run_id]
        for slot, record in list(self._keys.items()):
            if inside(record.tenant_id, record.user_id, record.session_id):
                del self._keys[slot]
