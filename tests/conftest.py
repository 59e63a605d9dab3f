"""Shared fixtures: hosts on each embedded store, and a fake clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost import Agent, Host
from support.clock import FakeClock
from support.stores import make_store

pytest.register_assert_rewrite("agenthost.testing")  # before the conformance tests import it


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def host(store_kind: str, tmp_path: Path) -> AsyncIterator[Host]:
    async with Host(Agent(name="test"), store=make_store(store_kind, tmp_path)) as h:
        yield h


@pytest.fixture
def bare_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ``AGENTHOST_*`` variable set and the working directory an empty one (no
    ``agenthost.toml`` around): ``Settings.load()`` reads only what the test puts there."""
    for name in list(os.environ):
        if name.startswith("AGENTHOST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
