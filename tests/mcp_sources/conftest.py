"""Fixtures for the MCP tests: the recording server over stdio and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.mcp_servers import HttpMCPServer


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpMCPServer]:
    server = HttpMCPServer(tmp_path).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def stdio_log(tmp_path: Path) -> Path:
    return tmp_path / "mcp-stdio.jsonl"
