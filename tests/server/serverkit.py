"""Helpers for the server tests: real ``agenthost serve`` processes, keys, in-process apps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from agenthost import Host
from agenthost.server import create_app
from agenthost.settings import Settings

HERE = Path(__file__).parent
READY_TIMEOUT = 30.0

KEYS = {
    "alice": "key-alice-0123456789",
    "bob": "key-bob-0123456789",
    "eve": "key-eve-0123456789",  # user "alice" of tenant "other"
    "service": "key-service-0123456789",
    "admin": "key-admin-0123456789",
}
API_KEYS = ",".join(
    [
        f"{KEYS['alice']}:acme:alice",
        f"{KEYS['bob']}:acme:bob",
        f"{KEYS['eve']}:other:alice",
        f"{KEYS['service']}:acme:*",
        f"{KEYS['admin']}:acme:!admin",
    ]
)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A real ``agenthost serve`` subprocess on a loopback port."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(HERE), **self.env}
        env.pop("OPENAI_API_KEY", None)
        env.pop("OPENAI_BASE_URL", None)
        self.log_path = log_path
        command = [sys.executable, "-m", "agenthost.cli", "serve", "--port", str(self.port)]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen([*command, *self.args], env=env, stderr=log)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling interval, not synchronisation
        raise RuntimeError(f"server not ready in {READY_TIMEOUT}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        assert self.log_path is not None
        self.start(self.log_path)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def make_app(settings: Settings | None = None, *, host: Host | None = None) -> FastAPI:
    settings = settings or Settings.load({"store": "memory://", "model": "offline"})
    return create_app(settings, host=host)


def uid(prefix: str = "u") -> str:
    """A fresh id, so tests sharing a server never see each other's sessions."""
    return f"{prefix}-{os.urandom(4).hex()}"


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``event: x`` / ``data: {...}`` frames -> [(type, data), ...]."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def read_first_event(lines: Iterator[str]) -> tuple[str, dict[str, Any]]:
    """Read one SSE frame from a live response's line iterator."""
    block: list[str] = []
    for line in lines:
        if not line:
            break
        block.append(line)
    return parse_sse("\n".join(block))[0]
