"""MemoryStore: everything in process memory, for tests and short-lived hosts."""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agenthost.errors import Conflict
from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores.base import RunRecord, SessionRecord, Snapshot, WriteBatch, check_scope
from agenthost.stores.runlog_memory import MemoryRunLog


def _copy_run(run: RunRecord) -> RunRecord:
    """A shallow copy, as ``copy.copy`` makes it but without its generic machinery."""
    return RunRecord(
        run.run_id,
        run.key,
        run.status,
        run.started_at,
        run.finished_at,
        run.error,
        run.usage,
        run.request_id,
    )


@dataclass(slots=True)
class _Entry:
    record: SessionRecord
    messages: deque[Message]
    runs: dict[str, RunRecord] = field(default_factory=dict)


class MemoryStore(MemoryRunLog):
    """Keeps at most ``max_messages`` messages per session (oldest dropped); ``None`` keeps all.

    State and config are copied on the way in and out so callers never share
    mutable objects with the store.
    """

    def __init__(self, max_messages: int | None = 100) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError("max_messages must be at least 1 (or None for no limit)")
        self.max_messages = max_messages
        self._sessions: dict[SessionKey, _Entry] = {}
        self._memory: dict[tuple[str, str], dict[str, Any]] = {}
        self._runs: dict[str, RunRecord] = {}
        MemoryRunLog.__init__(self)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def write(self, batch: WriteBatch) -> None:
        entry = self._sessions.get(batch.key)
        base = batch.base_revision
        if base is not None and base != (0 if entry is None else entry.record.revision):
            raise Conflict(f"session {batch.key} changed since revision {base}")
        if batch.messages and batch.base_seq != (0 if entry is None else entry.record.last_seq):
            raise Conflict(f"session {batch.key} has messages past seq {batch.base_seq}")
        if entry is None:
            entry = _Entry(
                SessionRecord(batch.key, batch.now, batch.now), deque(maxlen=self.max_messages)
            )
            self._sessions[batch.key] = entry
        record = entry.record
        record.revision = batch.new_revision()
        if batch.messages:
            entry.messages.extend(batch.messages)
            record.last_seq = batch.messages[-1].seq
            record.message_count = len(entry.messages)
        record.updated_at = batch.now
        if batch.state is not None:
            record.state = copy.deepcopy(batch.state)
        if batch.config is not None:
            record.config = copy.deepcopy(batch.config)
        if batch.pending is not None:
            record.pending = list(batch.pending)  # frozen records: nothing to copy deeply
        if batch.run is not None:
            run = _copy_run(batch.run)
            entry.runs[run.run_id] = run
            self._runs[run.run_id] = run

    def _copy_record(self, record: SessionRecord) -> SessionRecord:
        return SessionRecord(
            record.key,
            record.created_at,
            record.updated_at,
            record.last_seq,
            record.message_count,
            copy.deepcopy(record.state),
            copy.deepcopy(record.config),
            list(record.pending),
            record.revision,
        )

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        entry = self._sessions.get(key)
        if entry is None:
            return None
        messages = entry.messages
        tail = list(messages)[-window:] if window < len(messages) else list(messages)
        running = [r.run_id for r in entry.runs.values() if r.status == "running"]
        return Snapshot(self._copy_record(entry.record), tail, running)

    async def last_seq(self, key: SessionKey) -> int:
        entry = self._sessions.get(key)
        return entry.record.last_seq if entry else 0

    async def revision(self, key: SessionKey) -> int:
        entry = self._sessions.get(key)
        return entry.record.revision if entry else 0

    async def messages(
        self, key: SessionKey, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Message]:
        entry = self._sessions.get(key)
        if entry is None:
            return []
        out = [m for m in entry.messages if m.seq > after_seq]
        return out[:limit] if limit is not None else out

    def _matching(
        self, tenant_id: str | None, user_id: str | None, session_id: str | None = None
    ) -> list[_Entry]:
        return [
            e
            for k, e in self._sessions.items()
            if (tenant_id is None or k.tenant_id == tenant_id)
            and (user_id is None or k.user_id == user_id)
            and (session_id is None or k.session_id == session_id)
        ]

    async def sessions(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[SessionRecord]:
        entries = sorted(
            self._matching(tenant_id, user_id), key=lambda e: e.record.updated_at, reverse=True
        )
        end = None if limit is None else offset + limit
        return [self._copy_record(e.record) for e in entries[offset:end]]

    async def count_sessions(
        self, *, tenant_id: str | None = None, user_id: str | None = None
    ) -> int:
        return len(self._matching(tenant_id, user_id))

    async def delete(
        self,
        *,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        check_scope(tenant_id, user_id, session_id)
        doomed = self._matching(tenant_id, user_id, session_id)
        for entry in doomed:
            del self._sessions[entry.record.key]
            for run_id in entry.runs:
                self._runs.pop(run_id, None)
        if session_id is None:  # a user, a tenant or everything: their memory goes too
            for owner in [
                o
                for o in self._memory
                if (tenant_id is None or o[0] == tenant_id) and (user_id is None or o[1] == user_id)
            ]:
                del self._memory[owner]
        self._erase_runs(tenant_id, user_id, session_id)
        return len(doomed)

    async def runs(self, key: SessionKey, *, limit: int = 50) -> list[RunRecord]:
        entry = self._sessions.get(key)
        if entry is None:
            return []
        ordered = sorted(entry.runs.values(), key=lambda r: r.started_at, reverse=True)
        return [_copy_run(r) for r in ordered[:limit]]

    async def get_run(self, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return _copy_run(run) if run else None

    async def delete_idle(self, *, before: float, limit: int) -> int:
        old = [e for e in self._sessions.values() if e.record.updated_at < before][:limit]
        for entry in old:
            await self.delete(
                tenant_id=entry.record.key.tenant_id,
                user_id=entry.record.key.user_id,
                session_id=entry.record.key.session_id,
            )
        return len(old)

    async def get_memory(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._memory.get((tenant_id, user_id), {}))

    async def set_memory(self, tenant_id: str, user_id: str, memory: dict[str, Any]) -> None:
        self._memory[(tenant_id, user_id)] = copy.deepcopy(memory)
