"""Helpers for the server tests: in-process apps and SSE frames.

Real ``agenthost serve`` processes and their keys are in :mod:`support.serve`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from agenthost import Host
from agenthost.server import create_app
from agenthost.settings import Settings


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
