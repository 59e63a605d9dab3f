"""Real ``agenthost serve`` processes on free loopback ports, and the keys they accept.

:class:`Server` is the synchronous one the server and protocol tests share;
:class:`support.processes.ServeProcess` (async, for the scale-out tests) is built
from the same pieces: :func:`free_port`, :func:`serve_command` and
:func:`serve_environment`.
"""

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

TESTS = Path(__file__).parent.parent  # on the served processes' PYTHONPATH, for support.agents
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


def uid(prefix: str = "u") -> str:
    """A fresh id, so tests sharing a server never see each other's sessions."""
    return f"{prefix}-{os.urandom(4).hex()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(port: int, *args: str) -> list[str]:
    """``agenthost serve --port PORT ARGS...`` run by this interpreter."""
    return [sys.executable, "-m", "agenthost.cli", "serve", "--port", str(port), *args]


def serve_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without AGENTHOST_* or OpenAI settings (the flags and
    ``extra`` say everything), with the tests folder importable (``support.agents``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTHOST_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env["PYTHONPATH"] = str(TESTS)
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **(extra or {})}


@dataclass
class Server:
    """A real ``agenthost serve`` subprocess on a loopback port, its stderr in ``log_path``.

    ``agent`` is an import path (``support.agents:agent``) given as ``--agent``.
    """

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    agent: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        args = [*self.args, "--agent", self.agent] if self.agent else self.args
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                serve_command(self.port, *args), env=serve_environment(self.env), stderr=log
            )
        self.wait_ready()
        return self

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

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def sqlite_server(directory: Path, agent: str, *args: str, keyed: bool = False) -> Server:
    """A server (not started: use it as a context manager, or ``start()``) serving ``agent``
    on a SQLite store in ``directory``, its log there too; ``keyed``: api-keys auth with
    :data:`API_KEYS`, else the default (no auth, on loopback)."""
    flags = ["--store", f"sqlite:///{directory / 'agenthost.db'}"]
    if keyed:
        flags += ["--auth", "api-keys"]
    env = {"AGENTHOST_API_KEYS": API_KEYS} if keyed else {}
    return Server([*flags, *args], directory / "server.log", env, agent)
