"""B5/B7: ``agenthost serve`` driven over HTTP by a load generator in another process.

Each measurement starts the server (``--workers N``, offline model, ``--auth
none`` on 127.0.0.1) on a fresh SQLite file (B5) or the given PostgreSQL
database (B7, with user ids unique to the run, erased afterwards), waits for
``/healthz``, runs :mod:`agenthost_bench.loadgen` in a separate process,
and stops the server. The load generator shares the machine's cores with the
server, as it would on a one-box deployment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from agenthost.errors import MissingExtra
from agenthost.extras import installed
from agenthost_bench.inprocess import Metrics, Results
from agenthost_bench.options import Options
from agenthost_bench.process import python_module

WORKERS = {"1 worker": 1, "2 workers": 2}


def unavailable() -> str | None:
    """Why the HTTP workloads cannot run here, or None."""
    if not installed("server"):
        return MissingExtra("server", "agenthost serve").message
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agenthost serve exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError("agenthost serve did not become ready in time")


@contextlib.contextmanager
def serving(store: str, workers: int, directory: Path) -> Iterator[str]:
    """Run ``agenthost serve`` in the background; yield its base URL."""
    with serving_process(store, workers, directory) as (url, _process):
        yield url


@contextlib.contextmanager
def serving_process(
    store: str, workers: int, directory: Path, *, agent: str | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``agenthost serve`` in the background (the offline model, or ``agent``, an import
    path under ``bench/``); yield its base URL and its process."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "agenthost.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--store",
        store,
        *(["--agent", agent] if agent else ["--model", "offline"]),
        "--auth",
        "none",
        "--log-level",
        "warning",
    ]
    _, module_env = python_module("http")  # bench/ importable by the server, for ``agent``
    env = {k: v for k, v in module_env.items() if not k.startswith("AGENTHOST_")}
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=directory, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_ready(url, process)
        except RuntimeError as exc:
            log.flush()
            tail = (directory / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; server log:\n{tail}") from None
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def load(url: str, options: Options, prefix: str = "", *, verify: bool = True) -> Metrics:
    """Run the load generator against ``url`` in its own process; return its figures."""
    extra = [] if verify else ["--no-verify"]
    command, env = python_module(
        "loadgen",
        "--url",
        url,
        "--connections",
        str(options.http_connections),
        "--users",
        str(options.http_users),
        "--seconds",
        str(options.http_seconds),
        "--warmup",
        str(options.http_warmup),
        "--prefix",
        prefix,
        *extra,
    )
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300 + options.http_seconds,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for sample in figures.get("error_samples", []) + figures.get("wrong_samples", []):
        print(f"agenthost bench: {url}: {sample}", file=sys.stderr)
    return {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}


def _erase_users(url: str, prefix: str, users: int) -> None:
    for user in range(users):
        request = urllib.request.Request(f"{url}/v1/users/{prefix}user-{user}", method="DELETE")
        with contextlib.suppress(urllib.error.URLError):
            urllib.request.urlopen(request, timeout=10).close()


@contextlib.contextmanager
def floor_serving(workers: int, directory: Path, *, durable: bool = False) -> Iterator[str]:
    from agenthost_bench import floor

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with floor.serving(port, workers, directory, durable=durable) as process:
        _wait_ready(url, process)
        yield url


def _floor(workers: int, options: Options, *, durable: bool) -> Metrics:
    with (
        tempfile.TemporaryDirectory(prefix="agenthost-bench-floor-") as tmp,
        floor_serving(workers, Path(tmp), durable=durable) as url,
    ):
        return load(url, options, verify=False)


def _with_floor(results: Results, options: Options) -> Results:
    """Measure the bare ASGI floor and the durable floor (the same app committing a
    turn's two SQLite transactions) beside each variant; add the ratios."""
    for label, workers in WORKERS.items():
        floor = results[f"floor, {label}"] = _floor(workers, options, durable=False)
        durable = results[f"durable floor, {label}"] = _floor(workers, options, durable=True)
        ours = results[label]
        results[f"ratio, {label}"] = {
            "turns_per_s_ratio": ours["turns_per_s"] / floor["turns_per_s"],
            "p99_ratio": ours["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] else 0.0,
            "durable_ratio": ours["turns_per_s"] / durable["turns_per_s"],
        }
    return results


def run(backend: str, options: Options) -> Results:
    """One repetition of B5 (``backend="sqlite"``) or B7 (``"postgres"``): 1 worker, then 2;
    B5 also measures the bare ASGI floor (:mod:`agenthost_bench.floor`) beside them."""
    results = _run(backend, options)
    if backend == "sqlite":
        return _with_floor(results, options)
    return _with_postgres_floor(results, options)


def _with_postgres_floor(results: Results, options: Options) -> Results:
    """pgbench committing a turn's two statements, with as many connections as the
    served processes' pools hold (10 each), beside each variant; add the ratios."""
    from agenthost_bench import pgfloor

    if pgfloor.unavailable() or not options.postgres:
        return results
    for label, workers in WORKERS.items():
        floor = pgfloor.measure(
            options.postgres, clients=10 * workers, seconds=options.http_seconds
        )
        results[f"pgbench floor, {label}"] = floor
        results[f"ratio, {label}"] = {
            "turns_per_s_ratio": results[label]["turns_per_s"] / floor["turns_per_s"]
        }
    return results


def _run(backend: str, options: Options) -> Results:
    results: Results = {}
    for label, workers in WORKERS.items():
        with tempfile.TemporaryDirectory(prefix="agenthost-bench-http-") as tmp:
            directory = Path(tmp)
            if backend == "sqlite":
                store, prefix = f"sqlite:///{directory / 'bench.db'}", ""
            else:
                assert options.postgres, "B7 needs a PostgreSQL URL"
                store, prefix = options.postgres, f"b7-{os.getpid()}-{time.time_ns()}-"
            with serving(store, workers, directory) as url:
                results[label] = load(url, options, prefix)
                if prefix:
                    _erase_users(url, prefix, options.http_users)
    return results
