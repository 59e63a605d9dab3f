"""Fixtures for the server tests: in-process apps, and real ``agenthost serve`` processes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

# tests/server is a package (so this conftest is not the top-level module "conftest");
# its helper modules are imported by their plain names, as the served processes do.
sys.path.insert(0, str(Path(__file__).parent))

from serverkit import API_KEYS, Server, make_app


def _serve(tmp: Path, name: str, args: list[str], env: dict[str, str]) -> Iterator[Server]:
    server = Server(args, env)
    server.start(tmp / f"{name}.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """api-keys auth, queue policy, the test agent, SQLite."""
    tmp = tmp_path_factory.mktemp("keyed")
    args = ["--auth", "api-keys", "--store", f"sqlite:///{tmp / 'keyed.db'}"]
    args += ["--agent", "agenthost_test_agents:agent", "--models", "offline"]
    yield from _serve(tmp, "keyed", args, {"AGENTHOST_API_KEYS": API_KEYS})


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """--auth none (loopback), reject policy, the test agent, SQLite."""
    tmp = tmp_path_factory.mktemp("open")
    args = ["--policy", "reject", "--store", f"sqlite:///{tmp / 'open.db'}"]
    args += ["--agent", "agenthost_test_agents:agent", "--models", "offline"]
    args += ["--max-body-bytes", "4096"]
    yield from _serve(tmp, "open", args, {})


@pytest.fixture
def keyed(keyed_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed_server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def opened(open_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=open_server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An in-process app (auth none, memory store, offline model)."""
    app = make_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await app.state.host.close()
