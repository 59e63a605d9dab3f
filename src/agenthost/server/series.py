"""Recent activity of one server process in small time buckets, for the dashboard's charts.

The Prometheus metrics are cumulative and meant for a scraper; the web
dashboard wants "what happened in the last ten minutes" without one. A
:class:`StatsSeries` keeps a ring of fixed-width buckets (five seconds by
default): turns finished by status, a bounded random sample of their latencies
(for percentiles), HTTP 5xx responses, and session gauges sampled whenever the
dashboard asks. Recording a turn is a few integer operations, cheap enough for
the hot path; memory is bounded by ``buckets * latency_samples``.

Each process keeps its own series: behind a load balancer the dashboard shows
the process that answered it (Prometheus is the place for the fleet's view).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GAUGES = ("total_sessions", "live_sessions", "active_sessions", "evictions", "expirations")
"""Fields of ``Host.stats()`` kept per bucket (the last value seen in it)."""


@dataclass(slots=True)
class Bucket:
    start: float
    turns: int = 0
    failed: int = 0
    interrupted: int = 0
    http_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    gauges: dict[str, float] = field(default_factory=dict)


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, round(pct / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


class StatsSeries:
    """A ring of ``buckets`` buckets of ``bucket_seconds`` each; see the module docstring."""

    def __init__(
        self,
        *,
        bucket_seconds: float = 5.0,
        buckets: int = 120,
        latency_samples: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bucket_seconds <= 0 or buckets < 1 or latency_samples < 1:
            raise ValueError("bucket_seconds, buckets and latency_samples must be positive")
        self.bucket_seconds = bucket_seconds
        self.size = buckets
        self.latency_samples = latency_samples
        self.clock = clock
        self._ring: dict[int, Bucket] = {}
        self._random = random.Random()

    def _bucket(self) -> Bucket:
        index = int(self.clock() // self.bucket_seconds)
        bucket = self._ring.get(index)
        if bucket is None:
            bucket = self._ring[index] = Bucket(index * self.bucket_seconds)
            oldest = index - self.size
            for stale in [i for i in self._ring if i <= oldest]:
                del self._ring[stale]
        return bucket

    def record_turn(self, seconds: float, status: str) -> None:
        """A turn finished (``status`` is its run status)."""
        bucket = self._bucket()
        bucket.turns += 1
        if status == "failed":
            bucket.failed += 1
        elif status == "interrupted":
            bucket.interrupted += 1
        sample = bucket.latencies
        if len(sample) < self.latency_samples:
            sample.append(seconds)
        else:  # reservoir sampling: every turn of the bucket is equally likely to be kept
            slot = self._random.randrange(bucket.turns)
            if slot < self.latency_samples:
                sample[slot] = seconds

    def record_http_error(self) -> None:
        self._bucket().http_errors += 1

    def record_gauges(self, stats: dict[str, Any]) -> None:
        bucket = self._bucket()
        for name in GAUGES:
            value = stats.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                bucket.gauges[name] = value

    def points(self) -> list[dict[str, Any]]:
        """One point per bucket of the window, oldest first; empty buckets included."""
        now_index = int(self.clock() // self.bucket_seconds)
        out = []
        for index in range(now_index - self.size + 1, now_index + 1):
            bucket = self._ring.get(index) or Bucket(index * self.bucket_seconds)
            ordered = sorted(bucket.latencies)
            out.append(
                {
                    "start": bucket.start,
                    "turns": bucket.turns,
                    "turns_per_second": bucket.turns / self.bucket_seconds,
                    "failed": bucket.failed,
                    "interrupted": bucket.interrupted,
                    "http_errors": bucket.http_errors,
                    "latency_p50_ms": _ms(percentile(ordered, 50)),
                    "latency_p95_ms": _ms(percentile(ordered, 95)),
                    "latency_p99_ms": _ms(percentile(ordered, 99)),
                    **{name: bucket.gauges.get(name) for name in GAUGES},
                }
            )
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
