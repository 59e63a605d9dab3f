"""The test MCP server (``support/mcp_server.py``) as a stdio command or an HTTP process.

:class:`HttpMCPServer` runs it on a free loopback port; :func:`stdio_command`
is the command an ``MCPSource`` starts for stdio. Both append every call to a
JSON-lines log, read back with :func:`calls`. :func:`established` counts this
machine's open TCP connections to a port (from ``/proc/net/tcp``): what the
pool really holds open.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.serve import free_port

SERVER = Path(__file__).with_name("mcp_server.py")


def stdio_command(log: Path) -> list[str]:
    return [sys.executable, str(SERVER), "stdio", str(log)]


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


class HttpMCPServer:
    """``mcp_server.py http PORT LOG`` as a child process on 127.0.0.1."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = workdir / f"mcp-http-{self.port}.jsonl"
        self.output = workdir / f"mcp-http-{self.port}.out"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HttpMCPServer:
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER), "http", str(self.port), str(self.log)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:  # ready when it accepts connections
            if self.process.poll() is not None:
                raise AssertionError(f"MCP server exited:\n{self.output.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("MCP server did not listen in time") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def calls(self) -> list[dict[str, Any]]:
        return calls(self.log)


def established(port: int) -> int:
    """Open (ESTABLISHED) TCP connections whose remote end is 127.0.0.1:``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def bearer_of(caller: Any) -> dict[str, str]:
    """A credential provider (``headers_from``) for the HTTP server: a token per user."""
    return {"Authorization": f"Bearer token-of-{caller.tenant_id}-{caller.user_id}"}


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds (or fail): for what happens in the background."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
