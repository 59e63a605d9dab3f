"""B4 memory: bytes per live session, and RSS with a capped live-session cache.

Memory figures need a process of their own (earlier workloads would leave
their allocations in RSS), so the suite runs this module in a subprocess:

    python -m agenthost_bench.memory per-session --sessions 10000 [--tracemalloc]
    python -m agenthost_bench.memory bounded --sessions 100000 --max-live 1000

and reads one JSON object from its standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agenthost.agent import Agent
from agenthost.host import Host
from agenthost.stores.sqlite import SQLiteStore
from agenthost_bench.machine import rss_bytes
from agenthost_bench.process import python_module

Metrics = dict[str, float]


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes held by ``obj`` and everything it references that is not already counted."""
    seen = set() if seen is None else seen
    if obj is None or isinstance(obj, bool | type) or id(obj) in seen:
        return 0
    if obj == () or (isinstance(obj, int) and -5 <= obj <= 256):
        return 0  # interpreter-wide singletons
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    children: list[Any] = []
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset | deque):
        children = list(obj)
    elif not isinstance(obj, str | bytes | int | float):
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if hasattr(obj, name):
                    children.append(getattr(obj, name))
        if hasattr(obj, "__dict__"):
            children.append(obj.__dict__)
    return size + sum(deep_size(child, seen) for child in children)


def _host(directory: str, max_live: int) -> Host:
    store = SQLiteStore(Path(directory) / "memory.db")
    return Host(Agent(name="bench"), store=store, max_live_sessions=max_live, cleanup_interval=None)


async def per_session(sessions: int, *, traced: bool) -> Metrics:
    """Bytes each live session costs: ``sessions`` sessions with one turn each."""
    with tempfile.TemporaryDirectory(prefix="agenthost-bench-") as tmp:
        host = _host(tmp, max_live=sessions + 1000)
        async with host:
            for n in range(200):  # warm caches and the sqlite page cache
                await host.run("warm up", user_id=f"warm-{n}")
            gc.collect()
            if traced:
                tracemalloc.start()
            base_traced = tracemalloc.get_traced_memory()[0] if traced else 0
            base_rss = rss_bytes()
            for n in range(sessions):
                await host.run(f"hello, this is session {n}", user_id=f"user-{n}")
            gc.collect()
            grown_traced = tracemalloc.get_traced_memory()[0] - base_traced if traced else 0
            grown_rss = rss_bytes() - base_rss
            if traced:
                tracemalloc.stop()
            live = [s for s in host.cache if s.key.user_id.startswith("user-")]
            message_bytes = sum(deep_size(list(s.window)) for s in live) / len(live)
            structure = sum(deep_size(s) for s in live) / len(live) - message_bytes
    out: Metrics = {
        "sessions": sessions,
        "message_bytes": message_bytes,
        "structure_bytes": structure,
        "rss_bytes_per_session": grown_rss / sessions,
    }
    if traced:
        out["traced_bytes_per_session"] = grown_traced / sessions
        out["traced_overhead_bytes"] = grown_traced / sessions - message_bytes
    return out


async def bounded(sessions: int, max_live: int) -> Metrics:
    """RSS while touching ``sessions`` distinct sessions with at most ``max_live`` in memory."""
    cap = min(max_live, sessions)
    checkpoints: dict[int, list[str]] = {}
    for n, name in ((cap, "cap"), (max(cap, sessions // 10), "tenth"), (sessions, "end")):
        checkpoints.setdefault(n, []).append(f"rss_{name}_mib")
    out: Metrics = {"sessions": sessions, "max_live_sessions": max_live}
    with tempfile.TemporaryDirectory(prefix="agenthost-bench-") as tmp:
        host = _host(tmp, max_live=max_live)
        async with host:
            gc.collect()
            out["rss_start_mib"] = rss_bytes() / 2**20
            for n in range(1, sessions + 1):
                await host.run(f"hello, this is session {n}", user_id=f"user-{n}")
                if n in checkpoints:
                    gc.collect()
                    rss = rss_bytes() / 2**20
                    out.update(dict.fromkeys(checkpoints[n], rss))
            out["live_sessions_end"] = len(host.cache)
            out["evictions"] = host.cache.evictions
    out["rss_ratio"] = out["rss_end_mib"] / out["rss_cap_mib"]
    return out


def measure(args: list[str], timeout: float = 900) -> Metrics:
    """Run this module in a fresh interpreter and return the metrics it prints."""
    command, env = python_module("memory", *args)
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory benchmark failed: {done.stderr.strip()[-2000:]}")
    result: Metrics = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def b4(live_sessions: int, touched: int, max_live: int) -> dict[str, Metrics]:
    """B4 across three fresh processes: untraced RSS, tracemalloc, and the capped cache."""
    sessions = str(live_sessions)
    rss = measure(["per-session", "--sessions", sessions])
    traced = measure(["per-session", "--sessions", sessions, "--tracemalloc"])
    capped = measure(["bounded", "--sessions", str(touched), "--max-live", str(max_live)])
    per = {
        "sessions": traced["sessions"],
        "message_bytes": traced["message_bytes"],
        "structure_bytes": traced["structure_bytes"],
        "traced_bytes_per_session": traced["traced_bytes_per_session"],
        "traced_overhead_bytes": traced["traced_overhead_bytes"],
        "rss_bytes_per_session": rss["rss_bytes_per_session"],
        "rss_overhead_bytes": rss["rss_bytes_per_session"] - rss["message_bytes"],
    }
    return {"per-session": per, "capped": capped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agenthost_bench.memory")
    parser.add_argument("mode", choices=("per-session", "bounded"))
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--max-live", type=int, default=1000)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    run: Callable[[], Any]
    if args.mode == "per-session":
        run = lambda: per_session(args.sessions, traced=args.tracemalloc)  # noqa: E731
    else:
        run = lambda: bounded(args.sessions, args.max_live)  # noqa: E731
    print(json.dumps(asyncio.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
