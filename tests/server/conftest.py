"""Fixtures for the server tests: in-process apps (ASGI, or served on a loopback socket).

Tests that need a real ``agenthost serve`` process start their own (support.serve.Server).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

# tests/server is a package (so this conftest is not the top-level module "conftest");
# its helper module serverkit is imported by its plain name.
sys.path.insert(0, str(Path(__file__).parent))

from serverkit import make_app

from support.agents import AGENT
from support.inprocess import InProcessServer, sqlite_in_process


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """api-keys auth, queue policy, the test agent, SQLite; served in this process."""
    tmp = tmp_path_factory.mktemp("keyed")
    with sqlite_in_process(tmp, AGENT, "--models", "offline", keyed=True) as server:
        yield server


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """--auth none (loopback), reject policy, the test agent, SQLite; served in this process."""
    tmp = tmp_path_factory.mktemp("open")
    args = ["--policy", "reject", "--models", "offline", "--max-body-bytes", "4096"]
    with sqlite_in_process(tmp, AGENT, *args) as server:
        yield server


@pytest.fixture
def keyed(keyed_server: InProcessServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed_server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def opened(open_server: InProcessServer) -> Iterator[httpx.Client]:
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
