"""Servers for the protocol tests: one with API keys, one with ``--auth none``, both on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from protokit import API_KEYS, Server


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("proto-keyed")
    args = ["--auth", "api-keys", "--store", f"sqlite:///{tmp / 'keyed.db'}"]
    server = Server(args, tmp / "server.log", {"AGENTHOST_API_KEYS": API_KEYS}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("proto-open")
    args = ["--store", f"sqlite:///{tmp / 'open.db'}"]
    server = Server(args, tmp / "server.log").start()
    yield server
    server.stop()
