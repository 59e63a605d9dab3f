"""MemoryStore: everything in process memory, for tests and short-lived hosts."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from agenthost.errors import Conflict, QuotaExceeded
from agenthost.keys import SessionKey
from agenthost.messages import Message
from agenthost.stores import search
from agenthost.stores.base import (
    MemoryFence,
    MemoryRecord,
    RunRecord,
    SessionRecord,
    SessionSummary,
    Snapshot,
    WriteBatch,
    check_scope,
)
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
    summaries: list[SessionSummary] = field(default_factory=list)


def _copy_memory(record: MemoryRecord, embeddings: bool = True) -> MemoryRecord:
    vector = record.embedding
    return replace(
        record,
        tags=list(record.tags),
        embedding=list(vector) if embeddings and vector is not None else None,
    )


@dataclass(slots=True)
class _Memories:
    """One user's memories with their inverted index: term -> memory id -> frequency."""

    records: dict[str, MemoryRecord] = field(default_factory=dict)
    index: dict[str, dict[str, int]] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    total_length: int = 0

    def put(self, record: MemoryRecord) -> None:
        self.remove(record.memory_id)
        self.records[record.memory_id] = _copy_memory(record)
        document = search.document_terms(record.text, record.kind, record.tags)
        for term in document:
            postings = self.index.setdefault(term, {})
            postings[record.memory_id] = postings.get(record.memory_id, 0) + 1
        self.lengths[record.memory_id] = len(document)
        self.total_length += len(document)

    def remove(self, memory_id: str) -> bool:
        old = self.records.pop(memory_id, None)
        if old is None:
            return False
        for term in set(search.document_terms(old.text, old.kind, old.tags)):
            postings = self.index[term]
            del postings[memory_id]
            if not postings:
                del self.index[term]
        self.total_length -= self.lengths.pop(memory_id)
        return True


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
        self._memories: dict[tuple[str, str], _Memories] = {}
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
        summary = batch.summary
        if (
            summary is not None
            and entry is not None
            and any(s.version == summary.version for s in entry.summaries)
        ):
            raise Conflict(f"session {batch.key} has summary {summary.version} already")
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
        if summary is not None:
            entry.summaries.append(summary)  # frozen: shared safely
        if batch.run is not None:
            run = _copy_run(batch.run)
            entry.runs[run.run_id] = run
            self._runs[run.run_id] = run

    def _copy_record(
        self, record: SessionRecord, summary: SessionSummary | None = None
    ) -> SessionRecord:
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
            summary,
        )

    async def load(self, key: SessionKey, *, window: int) -> Snapshot | None:
        return await self.load_after(key, window=window, after_seq=0)

    async def load_after(self, key: SessionKey, *, window: int, after_seq: int) -> Snapshot | None:
        entry = self._sessions.get(key)
        if entry is None:
            return None
        messages = [m for m in entry.messages if m.seq > after_seq] if after_seq else entry.messages
        tail = list(messages)[-window:] if window < len(messages) else list(messages)
        running = [r.run_id for r in entry.runs.values() if r.status == "running"]
        summary = entry.summaries[-1] if entry.summaries else None
        return Snapshot(self._copy_record(entry.record, summary), tail, running)

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
        if session_id is None:  # a user, a tenant or everything: their memories go too
            for owner in [
                o
                for o in self._memories
                if (tenant_id is None or o[0] == tenant_id) and (user_id is None or o[1] == user_id)
            ]:
                del self._memories[owner]
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

    async def summaries(self, key: SessionKey) -> list[SessionSummary]:
        entry = self._sessions.get(key)
        return list(entry.summaries) if entry else []

    # -- long-term memory ----------------------------------------------------------------

    def _check(self, fence: MemoryFence | None) -> None:
        if fence is None:
            return
        entry = self._sessions.get(fence.key)
        if entry is None or entry.record.revision != fence.revision:
            raise Conflict(f"session {fence.key} changed since revision {fence.revision}")

    async def add_memory(
        self, record: MemoryRecord, *, fence: MemoryFence | None = None, cap: int | None = None
    ) -> None:
        self._check(fence)
        owner = self._memories.get((record.tenant_id, record.user_id))
        if owner is not None and record.memory_id in owner.records:
            raise Conflict(f"memory {record.memory_id!r} exists already")
        if cap is not None and owner is not None and len(owner.records) >= cap:
            raise QuotaExceeded(f"this user has {cap} memories, the most allowed")
        if owner is None:
            owner = self._memories[(record.tenant_id, record.user_id)] = _Memories()
        owner.put(record)

    async def replace_memory(
        self, record: MemoryRecord, *, base_revision: int, fence: MemoryFence | None = None
    ) -> bool:
        self._check(fence)
        owner = self._memories.get((record.tenant_id, record.user_id))
        old = owner.records.get(record.memory_id) if owner else None
        if owner is None or old is None or old.revision != base_revision:
            return False
        owner.put(
            replace(record, created_at=old.created_at, session_id=old.session_id, run_id=old.run_id)
        )
        return True

    async def delete_memory(
        self, tenant_id: str, user_id: str, memory_id: str, *, fence: MemoryFence | None = None
    ) -> bool:
        self._check(fence)
        owner = self._memories.get((tenant_id, user_id))
        return owner.remove(memory_id) if owner else False

    async def get_memory(self, tenant_id: str, user_id: str, memory_id: str) -> MemoryRecord | None:
        owner = self._memories.get((tenant_id, user_id))
        record = owner.records.get(memory_id) if owner else None
        return _copy_memory(record, False) if record else None

    async def list_memories(
        self,
        tenant_id: str,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        embeddings: bool = False,
    ) -> list[MemoryRecord]:
        owner = self._memories.get((tenant_id, user_id))
        if owner is None:
            return []
        ordered = sorted(
            owner.records.values(), key=lambda r: (r.created_at, r.memory_id), reverse=True
        )
        end = None if limit is None else offset + limit
        return [_copy_memory(r, embeddings) for r in ordered[offset:end]]

    async def count_memories(self, tenant_id: str, user_id: str) -> int:
        owner = self._memories.get((tenant_id, user_id))
        return len(owner.records) if owner else 0

    async def search_memories(
        self,
        tenant_id: str,
        user_id: str,
        terms: Sequence[str],
        *,
        limit: int,
        embeddings: bool = False,
    ) -> list[tuple[MemoryRecord, float]]:
        owner = self._memories.get((tenant_id, user_id))
        if owner is None or not owner.records or not terms or limit < 1:
            return []
        total = len(owner.records)
        average = owner.total_length / total
        scores: dict[str, float] = {}
        for term in dict.fromkeys(terms):
            postings = owner.index.get(term)
            if not postings:
                continue
            df = len(postings)
            for memory_id, tf in postings.items():
                weight = search.bm25(tf, df, total, owner.lengths[memory_id], average)
                scores[memory_id] = scores.get(memory_id, 0.0) + weight
        records = owner.records
        ranked = sorted(
            scores.items(),
            key=lambda item: (-item[1], -records[item[0]].updated_at, item[0]),
        )
        return [(_copy_memory(records[i], embeddings), score) for i, score in ranked[:limit]]
