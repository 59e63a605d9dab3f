"""Profile ``agenthost serve`` under B5's load with py-spy, and summarise it per turn.

    pip install py-spy   # not a dependency of agenthost
    .venv/bin/python bench/pyspy_summary.py --record serve.txt   # serve, load, record, sum up
    .venv/bin/python bench/pyspy_summary.py serve.txt --turns-per-s 2400  # an earlier record

``--record`` starts ``agenthost serve`` (1 worker, SQLite) and B5's load generator,
samples the server for 8 seconds in the middle of the load, and prints the table.

Only the event loop's thread is counted (the WAL checkpointer and the usage ledger's
thread run beside it). Each block's share of the loop's samples, times the loop's time
per turn (1 / turns per second, the loop being busy all the time under this load),
gives microseconds per turn. Blocks nest: "the turn" is inside "HTTP app".
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

BLOCKS: dict[str, tuple[str, ...]] = {  # a block: a frame whose name starts so
    "HTTP app (everything under uvicorn's request cycle)": ("RequestResponseCycle.run_asgi",),
    "  agenthost's POST /v1/chat handler": ("chat (agenthost/server/lean.py", "answer (agenthost"),
    "    Runner.run (the turn, its events, its record)": ("Runner.run (agenthost/runs.py",),
    "      Host._stream (the turn loop)": ("Host._stream (agenthost/host.py",),
    "        turn observer (metrics, turn log line)": ("MetricsObserver.turn_finished",),
    "        usage meter": ("_TurnUsage.",),
    "  reached through Starlette's middleware and router (handler included)": (
        "Router.__call__ (starlette",
    ),
    "SQLite writes (group commit flush, a loop callback)": ("_LoopCommitter.flush",),
}


def summarise(path: Path, turns_per_s: float) -> str:
    loop = 0
    hits: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # frames name their files by absolute path: keep what follows site-packages or src
        stack = re.sub(r" \(/[^;]*?/(?:site-packages|src|python3\.\d+)/", " (", stack)
        if "asyncio/runners.py" not in stack:  # not the event loop's thread
            continue
        n = int(count)
        loop += n
        frames = stack.split(";")
        for label, names in BLOCKS.items():
            if any(frame.startswith(names) for frame in frames):
                hits[label] += n
    per_turn = 1e6 / turns_per_s
    rows = [
        "| block | share of the loop | us per turn |",
        "| --- | ---: | ---: |",
        f"| the event loop, all | 100% | {per_turn:.0f} |",
    ]
    for label in BLOCKS:
        share = hits[label] / loop if loop else 0.0
        rows.append(f"| {label.strip()} | {share:.0%} | {share * per_turn:.0f} |")
    return "\n".join(rows)


def record(out: Path) -> float:
    """Serve, load, sample; write py-spy's raw profile to ``out``; return turns per second."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    from agenthost_bench.http import serving_process
    from agenthost_bench.process import python_module

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory(prefix="agenthost-profile-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with serving_process(store, 1, Path(tmp)) as (url, server):
            command, env = python_module("loadgen", "--url", url, "--seconds", "14")
            load = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            sample = ["-d", "8", "-r", "250", "-f", "raw", "-o", str(out)]
            spied = subprocess.run(  # py-spy waits 8 s; the load runs 2 s warm-up + 14 s
                [spy, "record", "-p", str(server.pid), *sample],
                capture_output=True,
                text=True,
                check=False,
            )
            output, _ = load.communicate()
    if spied.returncode != 0:
        raise SystemExit(f"py-spy failed: {spied.stderr.strip()[-500:]}")
    figures = json.loads(output.strip().splitlines()[-1])
    return float(figures["turns_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, nargs="?", help="py-spy's raw output (-f raw)")
    parser.add_argument("--turns-per-s", type=float, help="the load's rate (with a profile)")
    parser.add_argument("--record", type=Path, metavar="OUT", help="serve, load and record")
    args = parser.parse_args()
    if args.record:
        turns_per_s = record(args.record)
        print(f"{turns_per_s:,.0f} turns/s; profile in {args.record}\n")
        print(summarise(args.record, turns_per_s))
    elif args.profile and args.turns_per_s:
        print(summarise(args.profile, args.turns_per_s))
    else:
        parser.error("give a profile and --turns-per-s, or --record OUT")


if __name__ == "__main__":
    main()
