"""``agenthost.server.series``: the dashboard's time series (buckets of turns, errors and
gauges, a bounded latency sample) and its nearest-rank percentile."""

from __future__ import annotations

import pytest

from agenthost.server.series import StatsSeries, percentile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_series_buckets_roll_over_and_keep_a_bounded_latency_sample() -> None:
    clock = Clock()
    series = StatsSeries(bucket_seconds=5, buckets=3, latency_samples=10, clock=clock)
    for n in range(100):
        series.record_turn(n / 1000, "completed")
    series.record_turn(0.5, "failed")
    series.record_turn(0.5, "interrupted")
    series.record_http_error()
    series.record_gauges({"live_sessions": 4, "evictions": 2, "policy": "queue"})
    (point,) = series.points()[-1:]
    assert point["turns"] == 102 and point["failed"] == 1 and point["interrupted"] == 1
    assert point["http_errors"] == 1 and point["live_sessions"] == 4 and point["evictions"] == 2
    assert point["turns_per_second"] == pytest.approx(102 / 5)
    assert point["latency_p50_ms"] is not None and point["latency_p50_ms"] <= 500
    assert len(series._ring[200].latencies) == 10  # 102 turns, 10 kept

    clock.now += 5
    series.record_turn(0.2, "completed")
    assert [p["turns"] for p in series.points()] == [0, 102, 1]
    clock.now += 15  # three buckets later: the old ones fell out of the window
    series.record_turn(0.1, "completed")
    assert [p["turns"] for p in series.points()] == [0, 0, 1]
    assert len(series._ring) == 1


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0], 99) == 1.0
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 95) == 95.0
    assert percentile(ordered, 100) == 100.0
