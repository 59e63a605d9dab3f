"""Embedded stores for Host tests: a fresh one of a kind, in a test's directory."""

from __future__ import annotations

from pathlib import Path

from agenthost import MemoryStore, SQLiteStore
from agenthost.stores.base import SessionStore


def make_store(kind: str, tmp_path: Path) -> SessionStore:
    if kind == "memory":
        return MemoryStore(max_messages=None)
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "agenthost.db")
    return SQLiteStore(tmp_path / "agenthost-full.db", durability="full")
