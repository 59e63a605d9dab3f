"""The console's server side: pages and assets, ``GET /v1/config``, ``GET /v1/admin/series``."""

from __future__ import annotations

import httpx
import pytest

from agenthost.server.series import StatsSeries, percentile
from support.serve import bearer


async def test_pages_and_assets_are_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    for path, kind in (("/", "text/html"), ("/dashboard", "text/html")):
        page = await client.get(path)
        assert page.status_code == 200 and kind in page.headers["content-type"]
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
    script = await client.get("/console/playground.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "v1/chat" in script.text and "approvals" in script.text
    assert (await client.get("/console/console.css")).headers["content-type"].startswith("text/css")
    for missing in ("/console/nothing.js", "/console/index.html", "/console/..%2Fapp.py"):
        response = await client.get(missing)
        assert response.status_code in (404, 422), missing
        assert "error" in response.json()


async def test_config_lists_the_model_allow_list(client: httpx.AsyncClient) -> None:
    config = (await client.get("/v1/config")).json()
    assert config["auth"] == "none"
    assert config["default_model"] == "offline"
    assert config["models"] == ["offline"]
    assert "temperature" in config["config_keys"]


def test_config_needs_credentials_and_series_needs_an_admin(keyed: httpx.Client) -> None:
    assert keyed.get("/v1/config").status_code == 401
    models = keyed.get("/v1/config", headers=bearer("alice")).json()["models"]
    assert models == ["slow-when-asked", "offline"]  # the agent's model, then --models
    assert keyed.get("/v1/admin/series", headers=bearer("alice")).status_code == 403
    assert keyed.get("/v1/admin/series", headers=bearer("admin")).status_code == 200


def test_series_counts_turns_and_samples_the_session_gauges(opened: httpx.Client) -> None:
    def turns() -> int:
        return sum(p["turns"] for p in opened.get("/v1/admin/series").json()["points"])

    before = turns()
    opened.post("/v1/chat", json={"message": "hi", "user_id": "series-user"})
    series = opened.get("/v1/admin/series").json()
    assert series["bucket_seconds"] == 5.0
    assert len(series["points"]) == 120
    assert sum(p["turns"] for p in series["points"]) == before + 1
    last = series["points"][-1]
    assert last["live_sessions"] is not None and last["live_sessions"] >= 1
    assert any(p["latency_p50_ms"] is not None for p in series["points"])


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
