"""``agenthost migrate`` for the stores without versioned migrations (PostgreSQL's are in
``tests/scaleout/test_postgres_store.py``): it says what it did, and only that."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agenthost.cli import main


def test_sqlite_creates_its_tables_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert main(["migrate", "--store", url]) == 0
    assert capsys.readouterr().out == (
        f"{url}: tables created where missing (SQLite has no versioned migrations)\n"
    )
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"sessions", "messages", "runs"} <= tables


@pytest.mark.parametrize("url", ["memory://", "redis://127.0.0.1:6379/0"])
def test_stores_without_a_schema_have_nothing_to_migrate(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--store", url]) == 0
    assert capsys.readouterr().out.endswith("stores have no schema: nothing to migrate\n")


def test_an_unknown_scheme_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--store", "mysql://db/app"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mysql" in err and "Traceback" not in err
