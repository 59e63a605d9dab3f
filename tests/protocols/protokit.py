"""Real ``agenthost serve`` processes for the protocol tests, and their credentials."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).parent
READY_TIMEOUT = 30.0

KEYS = {
    "alice": "proto-key-alice-0123456789",
    "bob": "proto-key-bob-0123456789",
    "service": "proto-key-service-0123456789",
}
API_KEYS = ",".join(
    [
        f"{KEYS['alice']}:acme:alice",
        f"{KEYS['bob']}:acme:bob",
        f"{KEYS['service']}:acme:*",
    ]
)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def uid(prefix: str = "u") -> str:
    """A fresh id, so tests sharing a server never see each other's sessions."""
    return f"{prefix}-{os.urandom(4).hex()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """``agenthost serve`` on a free loopback port, serving ``protocol_agents:agent``."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(HERE), **self.env}
        env.pop("OPENAI_API_KEY", None)
        env.pop("OPENAI_BASE_URL", None)
        command = [sys.executable, "-m", "agenthost.cli", "serve", "--port", str(self.port)]
        command += ["--agent", "protocol_agents:agent", *self.args]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
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
            time.sleep(0.05)  # polling for readiness, not synchronisation
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
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
