"""Servers for the protocol tests: one with API keys, one with ``--auth none``, both on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.agents import PROTOCOL_AGENT
from support.serve import Server, sqlite_server


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("proto-keyed")
    with sqlite_server(tmp, PROTOCOL_AGENT, keyed=True) as server:
        yield server


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with sqlite_server(tmp_path_factory.mktemp("proto-open"), PROTOCOL_AGENT) as server:
        yield server
