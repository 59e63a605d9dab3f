"""Real processes for the scale-out tests: ``agenthost serve`` and a throwaway PostgreSQL.

:class:`ServeProcess` runs ``agenthost serve`` on a free loopback port (auth
``none``), its output in a log file shown when something goes wrong.
:class:`PrivatePostgres` is a PostgreSQL cluster of the test's own (``initdb`` in a
temporary directory, its own port), so a test can stop and start the database
without disturbing anyone else using the shared server.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from agenthost.stores import SessionStore, open_store
from support.serve import READY_TIMEOUT, free_port, serve_command, serve_environment


class ServeProcess:
    """``agenthost serve --store ... [--coordination ...]`` as a child process."""

    def __init__(self, workdir: Path, name: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.log = workdir / f"{name}.log"
        self.args = serve_command(self.port, "--auth", "none", "--cleanup-interval", "3600", *args)
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> ServeProcess:
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                cwd=self.workdir,
                env=serve_environment(),
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(fd)
        await self.wait_ready()
        return self

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited:\n{self.output()}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready in time:\n{self.output()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lock release, as in a crash."""
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
        await process.wait()


def postgres_binaries() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return Path(candidates[-1]).parent


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own: ``start()``, ``stop()``, ``destroy()``."""

    def __init__(self) -> None:
        self.bin = postgres_binaries()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="agenthost-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o700)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *args], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise AssertionError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N"
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [*self._as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
        )
        return result.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server of this test's own, with an fsync-always append-only file so that a
    restart keeps every acknowledged write: ``start()``, ``stop()`` (SIGKILL), ``destroy()``."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="agenthost-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("private redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart_empty(self) -> None:
        """Kill the server and start it again with nothing: every key (every lock) gone."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


async def launch(
    servers: list[ServeProcess], workdir: Path, count: int, *args: str
) -> list[ServeProcess]:
    processes = [ServeProcess(workdir, f"serve{len(servers) + i}", *args) for i in range(count)]
    servers.extend(processes)
    await asyncio.gather(*(p.start() for p in processes))
    return processes


async def opened(url: str) -> SessionStore:
    store = open_store(url)
    await store.open()
    return store
