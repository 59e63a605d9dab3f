"""Benchmark B8 runs and reports its fields (tiny sizes; timings never asserted)."""

from __future__ import annotations

from agenthost_bench import mcpcall, suite


def test_b8_measures_every_variant_on_one_pooled_connection() -> None:
    results = mcpcall.b8(calls=5, turns=3)
    assert set(results) == {"@tool", "mcp stdio", "mcp http"}
    assert results["@tool"]["connects"] == 0
    for variant in ("mcp stdio", "mcp http"):
        metrics = results[variant]
        assert metrics["connects"] == 1
        assert metrics["call_us"] > 0 and metrics["turn_us"] > 0
        assert "added_call_us" in metrics and "added_turn_us" in metrics
    assert [w.id for w in suite.select("B8")] == ["B8"]
    assert mcpcall.unavailable() is None
