"""The benchmark workloads run and report their fields (tiny sizes; timings never asserted)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agenthost.cli import main
from agenthost_bench import inprocess, memory, options, recall, report, suite
from agenthost_bench.inprocess import Scale

TINY = Scale.tiny()


async def test_b1_sequential_turns_on_every_store() -> None:
    results = await inprocess.b1(TINY)
    assert set(results) == set(inprocess.STORES)
    for metrics in results.values():
        assert metrics["us_per_turn"] > 0 and metrics["turns_per_s"] > 0


async def test_b2_concurrent_turns_verify_every_session() -> None:
    results = await inprocess.b2(TINY)
    for metrics in results.values():
        assert metrics["sessions_verified"] == TINY.users
        assert metrics["sessions_wrong"] == 0
        assert metrics["replies_wrong"] == 0


async def test_b2_verification_notices_a_foreign_message() -> None:
    async with inprocess.bench_host("memory") as host:
        for u in range(TINY.users):
            for t in range(TINY.turns):
                await host.run(inprocess.prompt(u, t), user_id=f"user-{u}")
        assert await inprocess.verify_sessions(host, TINY) == 0
        await host.run(inprocess.prompt(1, 0), user_id="user-0")
        assert await inprocess.verify_sessions(host, TINY) == 1


async def test_b3_history_growth_reports_a_ratio() -> None:
    metrics = (await inprocess.b3(TINY))["sqlite"]
    assert metrics["messages_stored"] == 2 * TINY.history_turns
    assert metrics["ratio_mean"] > 0 and metrics["ratio_median"] > 0


async def test_b4_memory_per_session_and_bounded() -> None:
    per = await memory.per_session(50, traced=True)
    assert per["traced_bytes_per_session"] > 0
    assert per["message_bytes"] > 0 and per["structure_bytes"] > 0
    capped = await memory.bounded(60, max_live=10)
    assert capped["live_sessions_end"] == 10
    assert capped["evictions"] == 50
    assert capped["rss_ratio"] > 0


def test_b4_runs_in_a_fresh_process() -> None:
    metrics = memory.measure(["bounded", "--sessions", "20", "--max-live", "5"], timeout=60)
    assert metrics["live_sessions_end"] == 5


async def test_b6_slow_model_reaches_full_concurrency() -> None:
    results = await inprocess.b6(TINY)
    assert set(results) == {"memory spread", "memory burst", "sqlite spread", "sqlite burst"}
    burst = results["sqlite burst"]
    assert burst["turns"] == TINY.slow_sessions
    assert burst["peak_concurrency"] == TINY.slow_sessions
    assert {"added_p50_ms", "added_p99_ms", "added_max_ms"} <= results["memory spread"].keys()


async def test_b9_recall_reports_retrieval_and_turn_times() -> None:
    results = await recall.b9(TINY, None)
    assert set(results) == {"memory 1k", "memory 10k", "sqlite 1k", "sqlite 10k"}
    metrics = results["sqlite 1k"]
    assert metrics["memories"] == TINY.recall_memories
    assert metrics["retrieval_mean_ms"] > 0 and metrics["turn_ms_without_recall"] > 0
    assert {"retrieval_p99_ms", "added_ms", "turn_ms_with_recall"} <= metrics.keys()


async def test_b10_compaction_keeps_the_name_and_reports_a_ratio() -> None:
    results = await recall.b10(TINY)
    for metrics in results.values():
        assert metrics["name_recalled"] == 1
        assert metrics["compactions"] >= 1 and metrics["ratio_mean"] > 0


def test_deep_size_counts_shared_objects_once() -> None:
    text = "x" * 1000
    assert memory.deep_size([text, text]) < 2 * memory.deep_size(text)


def test_percentile_and_peak_overlap() -> None:
    assert inprocess.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert inprocess.percentile(list(map(float, range(1, 101))), 99) == 99.0
    assert inprocess.peak_overlap([(0, 2), (1, 3), (2.5, 4)]) == 2


def test_select_rejects_unknown_workloads() -> None:
    assert [w.id for w in suite.select("b1, B3")] == ["B1", "B3"]
    with pytest.raises(ValueError, match="B99"):
        suite.select("B1,B99")


def test_cli_writes_json_and_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = options.Options(scale=TINY, b4_live=20, b4_touched=30, b4_max_live=5)
    monkeypatch.setattr(options.Options, "make", classmethod(lambda cls, **kw: tiny))
    status = main(
        ["bench", "--only", "B1,B7", "--reps", "2", "--out", str(tmp_path), "--no-progress"]
    )
    assert status == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    assert {"cpu_model", "cores", "python"} <= data["machine"].keys()
    b1 = data["workloads"]["B1"]
    assert b1["reps"] == 2
    assert {"median", "min", "max"} <= b1["variants"]["memory"].keys()
    assert [t["variant"] for t in b1["targets"]] == ["memory", "sqlite"]
    assert "--postgres" in data["workloads"]["B7"]["skipped"]  # no URL given: no env fallback
    text = (tmp_path / "latest.md").read_text()
    assert "## B1" in text and "| memory |" in text and "cores" in text


RECORDED = Path(__file__).parent.parent / "bench" / "results"


def recorded() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in RECORDED.glob("latest.*")}


def test_by_default_the_report_goes_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = recorded()
    assert before, "the recorded report is missing"
    tiny = options.Options(scale=TINY)
    monkeypatch.setattr(options.Options, "make", classmethod(lambda cls, **kw: tiny))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["bench", "--only", "B1", "--reps", "1", "--no-progress"]) == 0
    assert (tmp_path / "agenthost-bench" / "latest.json").is_file()
    assert recorded() == before


def test_the_command_finds_the_suite_from_any_directory(tmp_path: Path) -> None:
    """A real ``agenthost bench`` process, the suite not on its path: it finds ``bench/``
    beside the package's source and writes where ``--output`` says."""
    before = recorded()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "agenthost.cli", "bench", "--quick", "--only", "B3"]
    command += ["--reps", "1", "--no-progress", "--output", str(out)]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"report: {out / 'latest.json'}" in done.stdout
    data = json.loads((out / "latest.json").read_text())
    assert data["workloads"]["B3"]["reps"] == 1
    assert data["command"] == f"agenthost bench --quick --only B3 --reps 1 --out {out}"
    assert recorded() == before


def test_markdown_shows_failures_and_skips() -> None:
    data = {
        "command": "agenthost bench",
        "started_at": "2024-01-01T00:00:00+00:00",
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "platform": "linux",
            "python": "3.11",
            "implementation": "CPython",
            "agenthost": "0",
            "load_average_start": [],
        },
        "quick": True,
        "reps": 1,
        "workloads": {
            "B5": {"title": "http", "skipped": "no server"},
            "B1": {"title": "turns", "error": "RuntimeError: boom", "reps": 0, "seconds": 0},
        },
    }
    text = report.markdown(data)
    assert "Skipped: no server" in text and "RuntimeError: boom" in text
    assert report.failed(data) == ["B1"]


async def written(sent: list[bytes], count: int) -> None:
    """Let the loop run until ``count`` requests were written (each is one pass or so)."""
    for _ in range(100):
        if len(sent) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} requests were never written: {sent}")


async def test_loadgen_connection_parses_keep_alive_responses() -> None:
    from agenthost_bench.loadgen import _Connection

    class Transport:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.sent.append(data)

    conn = _Connection()
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    pending = asyncio.ensure_future(conn.request(b"GET / HTTP/1.1\r\n\r\n"))
    await written(transport.sent, 1)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    assert not pending.done()
    conn.data_received(b"cdHTTP/1.1 409")
    assert await pending == (200, b"abcd")
    second = asyncio.ensure_future(conn.request(b"GET / HTTP/1.1\r\n\r\n"))
    await written(transport.sent, 2)
    conn.data_received(b" Conflict\r\ncontent-length: 2\r\n\r\n{}")
    assert await second == (409, b"{}")
    assert transport.sent == [b"GET / HTTP/1.1\r\n\r\n"] * 2


async def test_b8_quota_variants_report_their_added_latency() -> None:
    from agenthost_bench import quotas

    results = await quotas.b8(TINY, None, None)
    assert set(results) == {"no quotas", "other tenant limited"}
    assert results["no quotas"]["added_p50_us"] == 0
    assert all(m["p50_us"] > 0 and m["p99_us"] >= m["p50_us"] for m in results.values())


def test_the_durable_floor_commits_each_turn_as_agenthost_would(tmp_path: Path) -> None:
    """B5's durable floor: two transactions per request, in agenthost's own schema."""
    import sqlite3
    import urllib.request

    from agenthost_bench import http

    with http.floor_serving(1, tmp_path, durable=True) as url:
        for turn in range(3):
            body = json.dumps({"user_id": "u1", "message": f"turn {turn}"}).encode()
            request = urllib.request.Request(
                f"{url}/v1/chat", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read()) == {
                    "user_id": "u1",
                    "reply": f"You said: turn {turn}",
                }
    with sqlite3.connect(tmp_path / "floor.db") as conn:
        rows = conn.execute(
            "SELECT seq, role FROM messages WHERE user_id = 'u1' ORDER BY seq"
        ).fetchall()
        runs = conn.execute("SELECT status FROM runs").fetchall()
    assert rows == [(n + 1, "user" if n % 2 == 0 else "assistant") for n in range(6)]
    assert runs == [("completed",)] * 3


def test_b12_streams_turns_and_reports_first_delta_and_per_delta_costs() -> None:
    from agenthost_bench import streaming

    results = streaming.run(turns=3)
    assert set(results) == {"1 delta", f"{streaming.WORDS} deltas", "per delta"}
    for series in ("1 delta", f"{streaming.WORDS} deltas"):
        figures = results[series]
        assert figures["turns"] == 3
        assert 0 < figures["first_delta_p50_ms"] <= figures["turn_p50_ms"]
    assert set(results["per delta"]) == {"server_cpu_us_per_delta", "wall_us_per_delta"}
