"""The suite: workloads B1-B12, their targets, repetitions and medians."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from agenthost_bench import http, inprocess, memory, quotas, recall, streaming
from agenthost_bench.inprocess import Results, Scale
from agenthost_bench.options import Options


@dataclass(frozen=True, slots=True)
class Target:
    """``variant``'s median ``metric`` must be ``<`` / ``<=`` / ``>=`` / ``==`` ``bound``."""

    variant: str
    metric: str
    op: str
    bound: float
    label: str

    def met(self, value: float) -> bool:
        if self.op == "<":
            return value < self.bound
        if self.op == "<=":
            return value <= self.bound
        if self.op == ">=":
            return value >= self.bound
        return value == self.bound


@dataclass(frozen=True, slots=True)
class Workload:
    id: str
    title: str
    run: Callable[[Options], Results]
    targets: Sequence[Target] = ()
    max_reps: int | None = None
    skip: Callable[[Options], str | None] = lambda options: None


def _sync(
    fn: Callable[[Scale], Coroutine[Any, Any, Results]],
) -> Callable[[Options], Results]:
    return lambda options: asyncio.run(fn(options.scale))


def _http(backend: str) -> Callable[[Options], Results]:
    return lambda options: http.run(backend, options)


def _http_skip(options: Options) -> str | None:
    return http.unavailable()


def _postgres_skip(options: Options) -> str | None:
    if not options.postgres:
        return "no PostgreSQL: pass --postgres URL (make bench passes $AGENTHOST_TEST_POSTGRES)"
    return _http_skip(options)


def _mcp(options: Options) -> Results:
    from agenthost_bench import mcpcall

    return mcpcall.b8(calls=300, turns=100) if options.quick else mcpcall.b8()


def _mcp_skip(options: Options) -> str | None:
    from agenthost_bench import mcpcall

    return mcpcall.unavailable()


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "B1",
        "in-process turns, sequential (100 users x 20 turns)",
        _sync(inprocess.b1),
        (
            Target("memory", "us_per_turn", "<=", 60, "MemoryStore <= 60 us/turn"),
            Target("sqlite", "us_per_turn", "<=", 250, "SQLiteStore <= 250 us/turn"),
        ),
    ),
    Workload(
        "B2",
        "in-process turns, all 2,000 issued concurrently; histories verified",
        _sync(inprocess.b2),
        tuple(
            Target(store, "sessions_wrong", "==", 0, f"{store}: every session exactly its own")
            for store in inprocess.STORES
        ),
    ),
    Workload(
        "B3",
        "history growth: one session, 1,000 turns on SQLite",
        _sync(inprocess.b3),
        (Target("sqlite", "ratio_mean", "<", 1.3, "turns 951-1000 / 1-50 < 1.3"),),
    ),
    Workload(
        "B4",
        "memory per live session; RSS with max_live_sessions=1000",
        lambda o: memory.b4(o.b4_live, o.b4_touched, o.b4_max_live),
        (
            Target("per-session", "traced_overhead_bytes", "<=", 4096, "<= 4 KiB beyond messages"),
            Target("capped", "rss_ratio", "<=", 1.5, "RSS end / after 1k <= 1.5"),
        ),
        max_reps=3,
    ),
    Workload(
        "B5",
        "HTTP end to end: agenthost serve on SQLite, 64 connections, 1,000 users; "
        "beside a bare ASGI app on the same uvicorn (the floor) and the same app committing "
        "a turn's two SQLite transactions (the durable floor)",
        _http("sqlite"),
        (
            Target("2 workers", "turns_per_s", ">=", 1500, ">= 1,500 turns/s with 2 workers"),
            Target("2 workers", "p99_ms", "<", 100, "p99 < 100 ms with 2 workers"),
            Target("1 worker", "errors", "==", 0, "no failed requests (1 worker)"),
            Target("2 workers", "errors", "==", 0, "no failed requests (2 workers)"),
            Target("ratio, 1 worker", "turns_per_s_ratio", ">=", 0.5, ">= 0.5x the floor (1)"),
            Target("ratio, 2 workers", "turns_per_s_ratio", ">=", 0.5, ">= 0.5x the floor (2)"),
            Target("ratio, 1 worker", "p99_ratio", "<=", 2.0, "p99 <= 2x the floor's (1)"),
            Target("ratio, 2 workers", "p99_ratio", "<=", 2.0, "p99 <= 2x the floor's (2)"),
        ),
        skip=_http_skip,
    ),
    Workload(
        "B6",
        "slow model (200 ms): 2,000 sessions, one turn each, sent over 200 ms (spread) "
        "or all at once (burst)",
        _sync(inprocess.b6),
        (
            Target("memory spread", "added_p99_ms", "<", 50, "p99 added < 50 ms"),
            Target("memory spread", "peak_share", ">=", 0.95, "all sessions in flight at once"),
        ),
    ),
    Workload(
        "B7",
        "scale-out: B5 on PostgreSQL, 1 process vs 2; beside pgbench committing a turn's "
        "two statements (the floor)",
        _http("postgres"),
        (
            Target("1 worker", "errors", "==", 0, "no failed requests (1 worker)"),
            Target("2 workers", "errors", "==", 0, "no failed requests (2 workers)"),
            Target("ratio, 1 worker", "turns_per_s_ratio", ">=", 0.5, ">= 0.5x pgbench (1)"),
            Target("ratio, 2 workers", "turns_per_s_ratio", ">=", 0.5, ">= 0.5x pgbench (2)"),
        ),
        skip=_postgres_skip,
    ),
    Workload(
        "B8",
        "MCP tool call on a warm pooled connection (stdio, streamable HTTP) vs a @tool function",
        _mcp,
        (
            Target("mcp stdio", "connects", "==", 1, "stdio: every call on one pooled connection"),
            Target("mcp http", "connects", "==", 1, "HTTP: every call on one pooled connection"),
        ),
        skip=_mcp_skip,
    ),
    Workload(
        "B9",
        "memory recall: one user with 1,000 (and 10,000) memories, one question per turn",
        lambda o: asyncio.run(recall.b9(o.scale, o.postgres)),
        (
            Target("sqlite 1k", "retrieval_p50_ms", "<=", 1.0, "SQLite: retrieval <= 1 ms/turn"),
            Target(
                "postgres 1k", "retrieval_p50_ms", "<=", 1.0, "PostgreSQL: retrieval <= 1 ms/turn"
            ),
        ),
    ),
    Workload(
        "B10",
        "compaction: one session, 5,000 turns, window 20 (model time excluded)",
        lambda o: asyncio.run(recall.b10(o.scale)),
        (
            Target("sqlite", "ratio_mean", "<=", 1.3, "turns 4,951-5,000 / 1-50 <= 1.3"),
            Target("sqlite", "name_recalled", "==", 1, "the name survives 5,000 turns"),
        ),
    ),
    Workload(
        "B11",
        "quotas: sequential turns with none, another tenant's only, a per-user rate limit "
        "in Redis (and a turn lease; --redis URL), in PostgreSQL (--postgres URL)",
        lambda o: asyncio.run(quotas.b8(o.scale, o.redis, o.postgres)),
        (Target("other tenant limited", "added_p50_us", "<", 10, "others' limits: < 10 us added"),),
    ),
    Workload(
        "B12",
        "streamed turns over HTTP (SSE), agenthost serve on SQLite: time to the first delta; "
        f"server CPU and time per delta (1 vs {streaming.WORDS} deltas)",
        lambda o: streaming.run(o.sse_turns),
        skip=_http_skip,
    ),
)

BY_ID = {w.id: w for w in WORKLOADS}


def select(only: str | None) -> list[Workload]:
    """Workloads named in a comma-separated list such as ``"B1,B3"`` (all when None)."""
    if not only:
        return list(WORKLOADS)
    names = [n.strip().upper() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_ID]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(BY_ID)}")
    return [BY_ID[n] for n in names]


def summarise(runs: list[Results]) -> dict[str, Any]:
    """Median, min and max of every metric of every variant over the repetitions."""
    variants: dict[str, Any] = {}
    for variant in runs[0]:
        metrics = runs[0][variant].keys()
        series = {m: [r[variant][m] for r in runs if variant in r] for m in metrics}
        variants[variant] = {
            "median": {m: statistics.median(v) for m, v in series.items()},
            "min": {m: min(v) for m, v in series.items()},
            "max": {m: max(v) for m, v in series.items()},
        }
    return variants


def check(workload: Workload, variants: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for target in workload.targets:
        value = variants.get(target.variant, {}).get("median", {}).get(target.metric)
        out.append(
            {
                "target": target.label,
                "variant": target.variant,
                "metric": target.metric,
                "value": value,
                "met": None if value is None else target.met(value),
            }
        )
    return out
