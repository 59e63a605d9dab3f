"""Servers for the protocol tests: one with API keys, one with ``--auth none``, both on SQLite,
both served in this process (tests that restart or add a process start real ones)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.agents import PROTOCOL_AGENT
from support.inprocess import InProcessServer, sqlite_in_process


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    tmp = tmp_path_factory.mktemp("proto-keyed")
    with sqlite_in_process(tmp, PROTOCOL_AGENT, keyed=True) as server:
        yield server


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with sqlite_in_process(tmp_path_factory.mktemp("proto-open"), PROTOCOL_AGENT) as server:
        yield server
