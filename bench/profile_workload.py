"""Profile one in-process workload with pyinstrument (a dev dependency).

    .venv/bin/python bench/profile_workload.py b1 --store sqlite
    .venv/bin/python bench/profile_workload.py b6 --store memory --html /tmp/b6.html

For the HTTP workloads, sample the running server instead (py-spy is not a
dependency: ``pip install py-spy``)::

    py-spy record -p <worker pid> -d 10 -o /tmp/serve.svg
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pyinstrument import Profiler

from agenthost_bench import inprocess

WORKLOADS = {
    "b1": lambda store, scale: inprocess.sequential_turns(store, scale),
    "b2": lambda store, scale: inprocess.concurrent_turns(store, scale),
    "b3": lambda store, scale: inprocess.history_growth(store, scale),
    "b6": lambda store, scale: inprocess.slow_model(store, scale, spread=scale.slow_delay),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--store", default="memory", choices=inprocess.STORES)
    parser.add_argument("--html", type=Path, help="write an HTML report here instead of text")
    args = parser.parse_args()
    run = WORKLOADS[args.workload]
    profiler = Profiler(interval=0.0002, async_mode="enabled")
    with profiler:
        print(asyncio.run(run(args.store, inprocess.Scale())))
    if args.html:
        args.html.write_text(profiler.output_html())
        print(f"wrote {args.html}")
    else:
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
