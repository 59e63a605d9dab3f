"""Shared fixtures: hosts on each embedded store, and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost import Agent, Host, MemoryStore, SQLiteStore
from agenthost.stores.base import SessionStore
from support.clock import FakeClock

pytest.register_assert_rewrite("agenthost.testing")  # before the conformance tests import it


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_store(kind: str, tmp_path: Path) -> SessionStore:
    if kind == "memory":
        return MemoryStore(max_messages=None)
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "agenthost.db")
    return SQLiteStore(tmp_path / "agenthost-full.db", durability="full")


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def host(store_kind: str, tmp_path: Path) -> AsyncIterator[Host]:
    async with Host(Agent(name="test"), store=make_store(store_kind, tmp_path)) as h:
        yield h
