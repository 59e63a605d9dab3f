"""``agenthost bench``: run the benchmark suite and write its report.

The suite is not part of the package: it lives beside it in the repository, in
``bench/agenthost_bench``, and this command finds it there (importable already,
or ``bench/`` under the current directory, or beside the source tree the
package runs from, as in an editable install). Reports go to a directory outside
the repository unless ``--out`` names one; ``--out bench/results`` refreshes the
recorded report.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HELP = "Run the benchmark suite (B1-B8, from a source checkout) and write a JSON + Markdown report."

SUITE = "agenthost_bench"


def default_out() -> Path:
    return Path(tempfile.gettempdir()) / "agenthost-bench"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller workloads, fewer repetitions")
    parser.add_argument("--only", metavar="B1,B3", help="comma-separated workloads to run")
    parser.add_argument(
        "--reps", type=int, default=None, help="repetitions per workload (default 5, quick 3)"
    )
    parser.add_argument(
        "--out",
        "--output",
        type=Path,
        default=None,
        help="directory for latest.json/latest.md and timestamped copies (default "
        f"{default_out()}; bench/results updates the recorded report)",
    )
    parser.add_argument(
        "--postgres", metavar="URL", help="PostgreSQL URL for B7 and B8 (else they skip it)"
    )
    parser.add_argument("--redis", metavar="URL", help="Redis URL for B8 (else it skips Redis)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def find_suite() -> ModuleType | None:
    """The ``agenthost_bench`` package, put on ``sys.path`` from the repository if need be."""
    try:
        return importlib.import_module(f"{SUITE}.cli")
    except ModuleNotFoundError as exc:
        if exc.name not in (SUITE, f"{SUITE}.cli"):
            raise
    source_root = Path(__file__).resolve().parents[3]  # src/agenthost/commands -> repository
    for bench in (Path.cwd() / "bench", source_root / "bench"):
        if (bench / SUITE / "cli.py").is_file():
            sys.path.insert(0, str(bench))
            return importlib.import_module(f"{SUITE}.cli")
    return None


def _command_line(args: argparse.Namespace) -> str:
    """The invocation, as it would be typed (the PostgreSQL URL is not echoed)."""
    words = ["agenthost", "bench"]
    if args.quick:
        words.append("--quick")
    if args.only:
        words += ["--only", args.only]
    if args.reps:
        words += ["--reps", str(args.reps)]
    if args.out is not None:
        words += ["--out", str(args.out)]
    if args.postgres:
        words += ["--postgres", "URL"]
    if args.redis:
        words += ["--redis", "URL"]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    suite = find_suite()
    if suite is None:
        print(
            "agenthost bench: the benchmark suite is not installed with the package; run this "
            "from a checkout of the repository (it lives in bench/agenthost_bench)",
            file=sys.stderr,
        )
        return 2
    status: int = suite.run(
        out=args.out or default_out(),
        command=_command_line(args),
        quick=args.quick,
        only=args.only,
        reps=args.reps,
        postgres=args.postgres,
        redis=args.redis,
        progress=not args.no_progress,
    )
    return status
