"""``agenthost bench``: run the benchmark suite and write its report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = "Run the benchmark suite (B1-B8) and write a JSON + Markdown report."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller workloads, fewer repetitions")
    parser.add_argument("--only", metavar="B1,B3", help="comma-separated workloads to run")
    parser.add_argument(
        "--reps", type=int, default=None, help="repetitions per workload (default 5, quick 3)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        help="directory for latest.json/latest.md and timestamped copies (default bench/results)",
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="PostgreSQL URL for B7 (default $AGENTHOST_TEST_POSTGRES)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _command_line(args: argparse.Namespace) -> str:
    """The invocation, as it would be typed (the PostgreSQL URL is not echoed)."""
    words = ["agenthost", "bench"]
    if args.quick:
        words.append("--quick")
    if args.only:
        words += ["--only", args.only]
    if args.reps:
        words += ["--reps", str(args.reps)]
    if args.out != Path("bench/results"):
        words += ["--out", str(args.out)]
    if args.postgres:
        words += ["--postgres", "URL"]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from agenthost.benchmarks.report import failed, run_suite, write
    from agenthost.benchmarks.suite import Options, select

    try:
        workloads = select(args.only)
    except ValueError as exc:
        print(f"agenthost bench: {exc}", file=sys.stderr)
        return 2
    reps = args.reps or (3 if args.quick else 5)
    if reps < 1:
        print("agenthost bench: --reps must be at least 1", file=sys.stderr)
        return 2
    options = Options.make(quick=args.quick, postgres=args.postgres)
    steps = sum(min(reps, w.max_reps or reps) for w in workloads if w.skip(options) is None)
    command = _command_line(args)
    with tqdm(total=steps, unit="run", disable=args.no_progress, file=sys.stderr) as bar:
        started = False

        def progress(step: str) -> None:
            nonlocal started
            if started:
                bar.update(1)
            started = True
            bar.set_description(step)

        report = run_suite(workloads, options, reps=reps, command=command, progress=progress)
        bar.update(1 if started else 0)
    json_path, md_path = write(report, args.out)
    print(md_path.read_text())
    print(f"report: {json_path} and {md_path}")
    broken = failed(report)
    if broken:
        print(f"agenthost bench: failed: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0
