"""Running the suite with repetitions, and writing its JSON and Markdown report."""

from __future__ import annotations

import datetime
import json
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agenthost_bench import machine
from agenthost_bench.inprocess import Results
from agenthost_bench.options import Options
from agenthost_bench.suite import Workload, check, summarise

Progress = Callable[[str], None]
"""Called once before each repetition with a short description of it."""


def run_suite(
    workloads: Sequence[Workload],
    options: Options,
    *,
    reps: int,
    command: str,
    progress: Progress = lambda step: None,
) -> dict[str, Any]:
    """Run every workload ``reps`` times (or its cap) and return the report as data."""
    report: dict[str, Any] = {
        "command": command,
        "started_at": _now(),
        "machine": machine.describe(),
        "quick": options.quick,
        "reps": reps,
        "workloads": {},
    }
    for workload in workloads:
        entry: dict[str, Any] = {"title": workload.title}
        report["workloads"][workload.id] = entry
        reason = workload.skip(options)
        if reason is not None:
            entry["skipped"] = reason
            continue
        runs: list[Results] = []
        count = min(reps, workload.max_reps or reps)
        began = time.perf_counter()
        try:
            for rep in range(count):
                progress(f"{workload.id} {rep + 1}/{count}")
                runs.append(workload.run(options))
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
        entry["reps"] = len(runs)
        entry["seconds"] = round(time.perf_counter() - began, 2)
        if runs:
            entry["variants"] = summarise(runs)
            entry["targets"] = check(workload, entry["variants"])
            entry["runs"] = runs
    report["finished_at"] = _now()
    report["machine"]["load_average_end"] = machine.load_average()
    return report


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def failed(report: dict[str, Any]) -> list[str]:
    """Workloads that raised or whose verification failed (missed timing targets do not count)."""
    out = []
    for name, entry in report["workloads"].items():
        if "error" in entry:
            out.append(name)
    return out


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = float(value)
    if number == int(number):
        return f"{int(number):,}"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    if abs(number) >= 100:
        return f"{number:.1f}"
    return f"{number:.2f}" if abs(number) >= 1 or number == 0 else f"{number:.3f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# agenthost benchmarks",
        "",
        f"- Command: `{report['command']}`",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m.get('memory_mib')} MiB, "
        f"{m['platform']}",
        f"- Python {m['python']} ({m['implementation']}), agenthost {m['agenthost']}",
        f"- Load average at start {m['load_average_start']}, at end "
        f"{m.get('load_average_end')} (the machine is shared; figures are medians)",
        f"- Started {report['started_at']}, finished {report.get('finished_at')}; "
        f"{report['reps']} repetitions{' (quick sizes)' if report['quick'] else ''}",
        "",
        "## Targets",
        "",
        "| workload | target | median | met |",
        "| --- | --- | ---: | --- |",
    ]
    for name, entry in report["workloads"].items():
        if "skipped" in entry:
            lines.append(f"| {name} | skipped: {entry['skipped']} | - | - |")
        for t in entry.get("targets", ()):
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(f"| {name} | {t['target']} | {fmt(t['value'])} | {met} |")
    for name, entry in report["workloads"].items():
        lines += ["", f"## {name}: {entry['title']}", ""]
        if "skipped" in entry:
            lines.append(f"Skipped: {entry['skipped']}.")
            continue
        if "error" in entry:
            lines += [f"Failed: `{entry['error']}`", ""]
        variants = entry.get("variants", {})
        if not variants:
            continue
        metrics: list[str] = []
        for v in variants.values():
            metrics += [k for k in v["median"] if k not in metrics]
        lines += [
            f"{entry['reps']} repetitions in {entry['seconds']} s; median (min-max).",
            "",
            "| variant | " + " | ".join(metrics) + " |",
            "| --- |" + " ---: |" * len(metrics),
        ]
        for variant, v in variants.items():
            cells = []
            for k in metrics:
                if k not in v["median"]:
                    cells.append("-")
                elif v["min"][k] == v["max"][k]:
                    cells.append(fmt(v["median"][k]))
                else:
                    cells.append(f"{fmt(v['median'][k])} ({fmt(v['min'][k])}-{fmt(v['max'][k])})")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``latest.json``/``latest.md`` and timestamped copies under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["started_at"].replace(":", "").replace("+0000", "Z")
    text = json.dumps(report, indent=2) + "\n"
    md = markdown(report)
    for name in (f"bench-{stamp}", "latest"):
        (out / f"{name}.json").write_text(text)
        (out / f"{name}.md").write_text(md)
    return out / "latest.json", out / "latest.md"
