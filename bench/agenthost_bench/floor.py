"""The HTTP floor: a bare Starlette app on the same uvicorn, for B5's ratio.

It does what any JSON endpoint must (read the body, parse it, build and send a
small JSON reply) and nothing else, so ``agenthost turns/s ÷ floor requests/s``
says how close a turn over HTTP is to what Python and uvicorn can serve at all.
Its reply has the shape the load generator checks (``user_id`` and ``"You said:
<message>"``), so both are driven by the same client with the same bodies.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agenthost_bench.process import python_module


async def chat(request: Request) -> Response:
    try:
        data = orjson.loads(await request.body())
        body = orjson.dumps({"user_id": data["user_id"], "reply": "You said: " + data["message"]})
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return Response(b'{"error":"bad body"}', 400, media_type="application/json")
    return Response(body, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/v1/chat", chat, methods=["POST"]), Route("/healthz", healthz)])


@contextlib.contextmanager
def serving(port: int, workers: int, directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The floor under uvicorn with ``agenthost serve``'s settings (uvloop, httptools, no
    access log), ``workers`` processes."""
    command, env = python_module("floor")
    command = [
        command[0],
        "-m",
        "uvicorn",
        "agenthost_bench.floor:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with (directory / "floor.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=log, stderr=log)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
