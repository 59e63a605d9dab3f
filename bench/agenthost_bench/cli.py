"""What ``agenthost bench`` runs once it has parsed its flags: the chosen workloads, with a
progress bar, then the report written to the directory it was given, and printed."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from agenthost_bench.options import Options
from agenthost_bench.report import failed, run_suite, write
from agenthost_bench.suite import select


def run(
    *,
    out: Path,
    command: str,
    quick: bool = False,
    only: str | None = None,
    reps: int | None = None,
    postgres: str | None = None,
    redis: str | None = None,
    progress: bool = True,
) -> int:
    """Run the suite and write ``latest.json``/``latest.md`` (and timestamped copies) in ``out``.

    Returns the exit status: 0, 1 when a workload failed, 2 for bad arguments.
    """
    try:
        workloads = select(only)
    except ValueError as exc:
        print(f"agenthost bench: {exc}", file=sys.stderr)
        return 2
    reps = reps or (3 if quick else 5)
    if reps < 1:
        print("agenthost bench: --reps must be at least 1", file=sys.stderr)
        return 2
    options = Options.make(quick=quick, postgres=postgres, redis=redis)
    steps = sum(min(reps, w.max_reps or reps) for w in workloads if w.skip(options) is None)
    with tqdm(total=steps, unit="run", disable=not progress, file=sys.stderr) as bar:
        started = False

        def step(description: str) -> None:
            nonlocal started
            if started:
                bar.update(1)
            started = True
            bar.set_description(description)

        report = run_suite(workloads, options, reps=reps, command=command, progress=step)
        bar.update(1 if started else 0)
    json_path, md_path = write(report, out)
    print(md_path.read_text())
    print(f"report: {json_path} and {md_path}")
    broken = failed(report)
    if broken:
        print(f"agenthost bench: failed: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0
