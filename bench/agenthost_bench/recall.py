"""B9 memory recall and B10 compaction: what long-term memory and long sessions cost a turn.

B9: one user with 1,000 memories (and 10,000: what happens at scale) asks one
question per turn; the agent puts the relevant memories before the model. The
figure is the time the turn spends assembling that context (the store's search
and the message: its median, mean and p99 per turn), and the turn time with
recall on against the same turns with it off. Memories and questions are made
of one 600-word vocabulary, so each question matches some tens (1,000) to
hundreds (10,000) of memories, as real questions do.

B10: one session, 5,000 turns, compaction on (window 20): turns 4,951-5,000
against turns 1-50. A turn's cost runs from its start to the next one's, so the
compaction after it (off the user's wait, but real work of that session) counts;
model time, the turns' and the summaries', is excluded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from agenthost.agent import Agent
from agenthost.compaction import Compaction
from agenthost.host import Host
from agenthost.memory import LongTermMemory
from agenthost.models import FunctionModel, ModelReply, ModelRequest, OfflineModel
from agenthost.stores.base import MemoryRecord, SessionStore, new_revision
from agenthost.stores.memory import MemoryStore
from agenthost.stores.sqlite import SQLiteStore
from agenthost_bench.inprocess import Metrics, Results, Scale, percentile, quiet_heap

TENANT, USER_ID = "bench", "recaller"
_VOCABULARY = [f"w{i:03d}" for i in range(600)]


@contextlib.asynccontextmanager
async def recall_store(kind: str, postgres: str | None) -> AsyncIterator[SessionStore]:
    """A fresh, open store of ``kind`` (PostgreSQL in a schema dropped afterwards)."""
    with tempfile.TemporaryDirectory(prefix="agenthost-bench-") as tmp:
        if kind == "memory":
            store: SessionStore = MemoryStore(max_messages=None)
        elif kind == "sqlite":
            store = SQLiteStore(Path(tmp) / "bench.db")
        else:
            from agenthost.stores.postgres import PostgresStore

            assert postgres is not None
            schema = f"bench_recall_{new_revision()}"
            store = PostgresStore(postgres, schema=schema, max_size=4)
        await store.open()
        try:
            yield store
        finally:
            if kind == "postgres":
                await _drop_schema(store)
            await store.close()


async def _drop_schema(store: SessionStore) -> None:
    schema = getattr(store, "schema", None)
    call = getattr(store, "_call", None)
    if schema and call is not None:
        await call(lambda conn: conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _analyze(store: SessionStore) -> None:
    """PostgreSQL: statistics for the planner, as autovacuum gathers them after a bulk load."""
    call = getattr(store, "_call", None)
    if getattr(store, "schema", None) and call is not None:
        await call(lambda conn: conn.execute("ANALYZE memories"))


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_VOCABULARY) for _ in range(words))


async def fill(store: SessionStore, count: int, *, seed: int = 1) -> None:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        at = 1000.0 + i
        text = f"The user mentioned {sentence(rng, 8)}"
        records.append(
            MemoryRecord(f"mem_{i:06d}", TENANT, USER_ID, text, created_at=at, updated_at=at)
        )
        records[-1].revision = new_revision()
    for first in range(0, count, 50):
        await asyncio.gather(*(store.add_memory(r) for r in records[first : first + 50]))


def _timed(
    context: Callable[..., Awaitable[object]], spent: list[float]
) -> Callable[..., Awaitable[object]]:
    async def timed(*args: object) -> object:
        began = time.perf_counter()
        result = await context(*args)
        spent.append(time.perf_counter() - began)
        return result

    return timed


async def recall_turns(kind: str, memories: int, turns: int, postgres: str | None) -> Metrics:
    """Turns with recall on (1 warm-up round), then the same with recall off; per turn."""
    out: Metrics = {"memories": memories}
    for recall in (True, False):
        options = LongTermMemory(tools=False) if recall else None
        async with recall_store(kind, postgres) as store:
            await fill(store, memories)
            await _analyze(store)
            host = Host(
                Agent(name="bench", model="offline", long_term_memory=options),
                store=store,
                cleanup_interval=None,
            )
            spent: list[float] = []
            if host._env.context is not None:
                host._env.context = _timed(host._env.context, spent)  # type: ignore[assignment]
            rng = random.Random(2)
            questions = [f"what did I say about {sentence(rng, 6)}" for _ in range(turns)]
            await host.start()
            for question in questions[:20]:
                await host.run(question, user_id=USER_ID, tenant_id=TENANT)  # warm up the caches
            spent.clear()
            quiet_heap()
            began = time.perf_counter()
            for question in questions:
                await host.run(question, user_id=USER_ID, tenant_id=TENANT)
            elapsed = time.perf_counter() - began
            await host.upkeep.close()
        label = "with" if recall else "without"
        out[f"turn_ms_{label}_recall"] = elapsed / turns * 1000
        if recall:
            out["retrieval_p50_ms"] = statistics.median(spent) * 1000
            out["retrieval_mean_ms"] = statistics.fmean(spent) * 1000
            out["retrieval_p99_ms"] = percentile(spent, 99) * 1000
    out["added_ms"] = out["turn_ms_with_recall"] - out["turn_ms_without_recall"]
    return out


async def b9(scale: Scale, postgres: str | None) -> Results:
    results: Results = {}
    for kind in ("memory", "sqlite", "postgres"):
        if kind == "postgres" and not postgres:
            continue
        results[f"{kind} 1k"] = await recall_turns(
            kind, scale.recall_memories, scale.recall_turns, postgres
        )
        results[f"{kind} 10k"] = await recall_turns(
            kind, scale.recall_big, scale.recall_turns, postgres
        )
    return results


# -- B10 -----------------------------------------------------------------------------


async def compaction_growth(kind: str, scale: Scale) -> Metrics:
    offline = OfflineModel()
    model_time = [0.0]

    def model(request: ModelRequest) -> ModelReply:
        began = time.perf_counter()
        reply = offline.reply(request)
        model_time[0] += time.perf_counter() - began
        return reply

    with tempfile.TemporaryDirectory(prefix="agenthost-bench-") as tmp:
        store: SessionStore = (
            MemoryStore(max_messages=None) if kind == "memory" else SQLiteStore(Path(tmp) / "b.db")
        )
        agent = Agent(
            name="bench", model=FunctionModel(model), history_window=20, compaction=Compaction()
        )
        times: list[float] = []
        async with Host(agent, store=store, cleanup_interval=None) as host:
            for turn in range(100):  # warm up: imports, caches, the first compactions
                await host.run(f"warm up {turn}", user_id="warm-up", tenant_id=TENANT)
            await host.run("My name is Bench", user_id=USER_ID, tenant_id=TENANT)
            await host.upkeep.drain()
            quiet_heap()
            clock = time.perf_counter
            for turn in range(scale.compaction_turns):
                spent_before = model_time[0]
                began = clock()
                text = f"turn {turn}: tell me about {_VOCABULARY[turn % 600]}"
                await host.run(text, user_id=USER_ID, tenant_id=TENANT)
                # the loop turns over before the next request, as it does between a server's
                # requests: upkeep runs here, and counts in this turn's cost
                await asyncio.sleep(0)
                times.append(clock() - began - (model_time[0] - spent_before))
            await host.upkeep.drain()
            record = await host.get_session(user_id=USER_ID, tenant_id=TENANT)
            recalled = (await host.run("What is my name?", user_id=USER_ID, tenant_id=TENANT)).reply
            stats = await host.stats()
    n = scale.history_sample
    first, last = times[:n], times[-n:]
    assert record is not None and record.summary is not None
    return {
        "first_mean_us": statistics.fmean(first) * 1e6,
        "last_mean_us": statistics.fmean(last) * 1e6,
        "ratio_mean": statistics.fmean(last) / statistics.fmean(first),
        "ratio_median": statistics.median(last) / statistics.median(first),
        "compactions": stats["compactions"],
        "summary_chars": len(record.summary.text),
        "name_recalled": float(recalled == "Your name is Bench."),
    }


async def b10(scale: Scale) -> Results:
    return {kind: await compaction_growth(kind, scale) for kind in ("sqlite", "memory")}
