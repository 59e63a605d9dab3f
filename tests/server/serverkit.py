"""Helpers for the server tests: in-process apps, SSE frames, a real server's JSON log lines.

Real ``agenthost serve`` processes and their keys are in :mod:`support.serve`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from agenthost import Host
from agenthost.server import create_app
from agenthost.settings import Settings
from support.serve import Server


def make_app(settings: Settings | None = None, *, host: Host | None = None) -> FastAPI:
    settings = settings or Settings.load({"store": "memory://", "model": "offline"})
    return create_app(settings, host=host)


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


def log_lines(server: Server, *request_ids: str) -> list[dict[str, Any]]:
    """The server's JSON log lines, once each of ``request_ids`` has its access line (it is
    written just after the response is sent, so it may trail the response by a moment)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        logged = {line.get("request_id") for line in lines if line["message"] == "request"}
        if set(request_ids) <= logged or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)  # polling the log file for a line, not synchronisation
