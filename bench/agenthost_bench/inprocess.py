"""In-process workloads: B1 sequential turns, B2 concurrent turns, B3 history growth,
B6 slow model. Each returns ``{variant: {metric: value}}`` for one repetition.

Every workload runs the offline model against a fresh store in a fresh
temporary directory, so repetitions do not see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agenthost.agent import Agent
from agenthost.host import Host
from agenthost.stores.base import RunRecord, SessionStore
from agenthost.stores.memory import MemoryStore
from agenthost.stores.sqlite import SQLiteStore

Metrics = dict[str, float]
Results = dict[str, Metrics]

STORES = ("memory", "sqlite", "sqlite-full")
"""Store variants: MemoryStore, SQLiteStore normal durability, SQLiteStore full durability."""


@dataclass(frozen=True, slots=True)
class Scale:
    """Workload sizes: the issue's figures by default, smaller for ``--quick`` and smoke tests."""

    users: int = 100
    turns: int = 20
    history_turns: int = 1000
    history_sample: int = 50
    slow_sessions: int = 2000
    slow_delay: float = 0.2

    @classmethod
    def quick(cls) -> Scale:
        return cls(users=50, turns=10, history_turns=400, slow_sessions=1000)

    @classmethod
    def tiny(cls) -> Scale:
        return cls(
            users=3, turns=2, history_turns=12, history_sample=3, slow_sessions=5, slow_delay=0.01
        )


def open_bench_store(kind: str, directory: Path) -> SessionStore:
    if kind == "memory":
        return MemoryStore(max_messages=None)
    if kind == "sqlite":
        return SQLiteStore(directory / "bench.db", durability="normal")
    if kind == "sqlite-full":
        return SQLiteStore(directory / "bench.db", durability="full")
    raise ValueError(f"unknown store {kind!r}; use one of {', '.join(STORES)}")


@contextlib.asynccontextmanager
async def bench_host(
    kind: str, *, model: str = "offline", observer: _ModelClock | None = None
) -> AsyncIterator[Host]:
    """A started Host on a fresh store of ``kind``, without the sweeper."""
    with tempfile.TemporaryDirectory(prefix="agenthost-bench-") as tmp:
        host = Host(
            Agent(name="bench", model=model),
            store=open_bench_store(kind, Path(tmp)),
            cleanup_interval=None,
            observer=observer,
        )
        try:
            async with host:
                yield host
        finally:
            gc.unfreeze()


def quiet_heap() -> None:
    """Collect, then freeze what exists now (the harness, earlier workloads, the started
    host), as ``agenthost serve`` does at startup: a full collection during the timed
    part then walks only what the workload allocates. ``bench_host`` unfreezes."""
    gc.collect()
    gc.freeze()


def prompt(user: int, turn: int) -> str:
    return f"user {user} says hello for turn {turn}"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (``pct`` in 0-100)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


async def _warm_up() -> None:
    """Import, compile and allocate once so the first timed turn is not special."""
    async with bench_host("memory") as host:
        for turn in range(20):
            await host.run(prompt(0, turn), user_id="warm-up")


# -- B1 ---------------------------------------------------------------------------


async def sequential_turns(kind: str, scale: Scale) -> Metrics:
    """B1: ``users`` x ``turns`` turns, one at a time (round robin over the users)."""
    await _warm_up()
    async with bench_host(kind) as host:
        users = [f"user-{u}" for u in range(scale.users)]
        texts = [[prompt(u, t) for u in range(scale.users)] for t in range(scale.turns)]
        quiet_heap()
        cpu = time.process_time()
        started = time.perf_counter()
        for turn in range(scale.turns):
            row = texts[turn]
            for u, user_id in enumerate(users):
                await host.run(row[u], user_id=user_id)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    count = scale.users * scale.turns
    return {
        "us_per_turn": elapsed / count * 1e6,
        "turns_per_s": count / elapsed,
        "cpu_us_per_turn": cpu / count * 1e6,
    }


async def b1(scale: Scale) -> Results:
    return {kind: await sequential_turns(kind, scale) for kind in STORES}


# -- B2 ---------------------------------------------------------------------------


async def verify_sessions(host: Host, scale: Scale) -> int:
    """Count sessions whose stored history is not exactly their own turns, in order."""
    bad = 0
    for u in range(scale.users):
        history = await host.history(user_id=f"user-{u}")
        expected: list[tuple[str, str]] = []
        for t in range(scale.turns):
            text = prompt(u, t)
            expected += [("user", text), ("assistant", f"You said: {text}")]
        actual = [(m.role, m.content) for m in history]
        seqs = [m.seq for m in history]
        runs_paired = all(
            history[i].run_id == history[i + 1].run_id for i in range(0, len(history) - 1, 2)
        )
        if actual != expected or seqs != list(range(1, len(expected) + 1)) or not runs_paired:
            bad += 1
    return bad


async def concurrent_turns(kind: str, scale: Scale) -> Metrics:
    """B2: every turn of every user started at once; the per-key lock keeps each user's order."""
    await _warm_up()
    async with bench_host(kind) as host:
        calls = [
            (prompt(u, t), f"user-{u}") for t in range(scale.turns) for u in range(scale.users)
        ]
        quiet_heap()
        cpu = time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(*(host.run(text, user_id=uid) for text, uid in calls))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        wrong_replies = sum(
            1
            for (text, uid), result in zip(calls, results, strict=True)
            if result.user_id != uid or result.reply != f"You said: {text}"
        )
        bad_sessions = await verify_sessions(host, scale)
    count = len(calls)
    return {
        "us_per_turn": elapsed / count * 1e6,
        "turns_per_s": count / elapsed,
        "cpu_us_per_turn": cpu / count * 1e6,
        "sessions_verified": scale.users - bad_sessions,
        "sessions_wrong": bad_sessions,
        "replies_wrong": wrong_replies,
    }


async def b2(scale: Scale) -> Results:
    return {kind: await concurrent_turns(kind, scale) for kind in STORES}


# -- B3 ---------------------------------------------------------------------------


async def history_growth(kind: str, scale: Scale) -> Metrics:
    """B3: one session, many turns; is a late turn dearer than an early one?"""
    await _warm_up()
    times: list[float] = []
    async with bench_host(kind) as host:
        clock = time.perf_counter
        quiet_heap()
        for turn in range(scale.history_turns):
            began = clock()
            await host.run(prompt(0, turn), user_id="long-history")
            times.append(clock() - began)
        stored = await host.size(user_id="long-history", session_id="default")
    n = scale.history_sample
    first, last = times[:n], times[-n:]
    return {
        "first_mean_us": statistics.fmean(first) * 1e6,
        "last_mean_us": statistics.fmean(last) * 1e6,
        "ratio_mean": statistics.fmean(last) / statistics.fmean(first),
        "ratio_median": statistics.median(last) / statistics.median(first),
        "messages_stored": stored,
    }


async def b3(scale: Scale) -> Results:
    return {"sqlite": await history_growth("sqlite", scale)}


# -- B6 ---------------------------------------------------------------------------


class _ModelClock:
    """A turn observer that records when each model call ran (for peak concurrency)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def model_called(self, model: str, seconds: float, agent: str) -> None:
        end = time.perf_counter()
        self.calls.append((end - seconds, end))

    def turn_finished(self, run: RunRecord, seconds: float, agent: str) -> None:
        return None

    def handed_off(self, source: str, target: str) -> None:
        return None


def peak_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


async def slow_model(kind: str, scale: Scale, *, spread: float) -> Metrics:
    """B6: ``slow_sessions`` sessions each send one turn to a model with latency.

    Session ``i`` sends at ``i / n * spread`` seconds: all at once with ``spread=0``
    (a burst: the last turn waits for the CPU work of all the others, so its
    added latency measures throughput), or spread over one model latency, so
    that all of them are in flight together yet arrive as a busy server's
    requests would. A turn's latency runs from when it was due to be sent.
    """
    await _warm_up()
    delay_ms = round(scale.slow_delay * 1000)
    clock = _ModelClock()
    count = scale.slow_sessions
    async with bench_host(kind, model=f"offline:{delay_ms}ms", observer=clock) as host:
        latencies: list[float] = []

        async def one(user: int) -> None:
            due = started + user / count * spread
            if spread:
                await asyncio.sleep(due - time.perf_counter())
            await host.run(prompt(user, 0), user_id=f"user-{user}")
            latencies.append(time.perf_counter() - due)

        quiet_heap()
        started = time.perf_counter()
        await asyncio.gather(*(one(u) for u in range(count)))
        wall = time.perf_counter() - started
    added = [(lat - scale.slow_delay) * 1000 for lat in latencies]
    return {
        "turns": len(latencies),
        "peak_concurrency": peak_overlap(clock.calls),
        "peak_share": peak_overlap(clock.calls) / count,
        "mean_concurrency": sum(latencies) / wall,
        "wall_s": wall,
        "added_p50_ms": percentile(added, 50),
        "added_p99_ms": percentile(added, 99),
        "added_max_ms": max(added),
    }


async def b6(scale: Scale) -> Results:
    """Both stores, arrivals spread over one model latency ("spread") and all at once ("burst")."""
    out: Results = {}
    for kind in ("memory", "sqlite"):
        out[f"{kind} spread"] = await slow_model(kind, scale, spread=scale.slow_delay)
        out[f"{kind} burst"] = await slow_model(kind, scale, spread=0.0)
    return out
