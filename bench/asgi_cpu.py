"""CPU per request of the ASGI app alone (no uvicorn, no client): agenthost's
``POST /v1/chat`` on SQLite beside the floor app, driven in-process.

    .venv/bin/python bench/asgi_cpu.py [--requests 20000] [--concurrency 64] [--profile FILE]

The figure is ``time.process_time()`` per request (all threads of this process), so a
busy machine changes it less than it changes wall-clock throughput. The turn log goes to a
file, as a served process writes it to its stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from agenthost.server.app import create_app
from agenthost.server.logs import configure_logging
from agenthost.settings import Settings
from agenthost_bench import floor


async def drive(app: Any, requests: int, concurrency: int, users: int = 1000) -> float:
    counter = itertools.count()
    user_busy: set[int] = set()

    async def one(n: int) -> None:
        user = n % users
        body = orjson.dumps({"message": f"turn {n}", "user_id": f"u{user}"})
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat",
            "raw_path": b"/v1/chat",
            "root_path": "",
            "query_string": b"",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        status = 0
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        assert status == 200, (status, b"".join(chunks))

    async def worker() -> None:
        while (n := next(counter)) < requests:
            while n % users in user_busy:  # one turn per user at a time, as the load generator
                n = next(counter)
                if n >= requests:
                    return
            user_busy.add(n % users)
            try:
                await one(n)
            finally:
                user_busy.discard(n % users)

    began = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - began) / requests * 1e6


async def lifespan_run(app: Any, requests: int, concurrency: int) -> float:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        await out.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    started = await out.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        await drive(app, min(2000, requests), concurrency)  # warm up
        return await drive(app, requests, concurrency)
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await out.get()
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the agenthost run here")
    parser.add_argument("--only", choices=["floor", "agenthost"])
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp())
    configure_logging(os.environ.get("LOGLEVEL", "info"))
    handler = logging.getLogger("agenthost").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(directory / "log", "w"))  # noqa: SIM115
    if args.only != "agenthost":
        floor_us = asyncio.run(lifespan_run(floor.app, args.requests, args.concurrency))
        print(f"floor:     {floor_us:7.1f} us CPU per request")
    if args.only == "floor":
        return
    settings = Settings(store=os.environ.get("STORE", f"sqlite:///{directory}/a.db"))
    app = create_app(settings)
    if args.profile:
        import cProfile

        with cProfile.Profile() as profile:
            ours = asyncio.run(lifespan_run(app, args.requests, args.concurrency))
        profile.dump_stats(args.profile)
    else:
        ours = asyncio.run(lifespan_run(app, args.requests, args.concurrency))
    print(f"agenthost: {ours:7.1f} us CPU per request")
    for tid in sorted(os.listdir("/proc/self/task")):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/self/task/{tid}/comm") as f:
            name = f.read().strip()
        ticks = int(fields[11]) + int(fields[12])
        print(f"  thread {tid} {name}: {ticks / os.sysconf('SC_CLK_TCK'):.2f} s")


if __name__ == "__main__":
    main()
