"""``agenthost.testing`` is usable by a third-party backend: a project of its own, with
pytest-asyncio in strict mode and none of agenthost's test configuration, runs the
suite through one ``store_factory`` fixture; a store with a subtle bug fails it."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import agenthost.testing

CONFTEST = """
import pytest

pytest.register_assert_rewrite("agenthost.testing")
"""

GOOD = """
import pytest

from agenthost import MemoryStore
from agenthost.testing import *  # noqa: F403


class ThirdPartyStore(MemoryStore):
    "Stands in for someone else's backend: it only has to keep the protocol."


@pytest.fixture
def store_factory():
    shared = ThirdPartyStore(max_messages=None)
    return lambda: shared
"""

BROKEN = """
import pytest

from agenthost import MemoryStore
from agenthost.testing import *  # noqa: F403


class OldestFirstRuns(MemoryStore):
    async def runs(self, key, *, limit=50):
        return list(reversed(await super().runs(key, limit=limit)))


@pytest.fixture
def store_factory():
    shared = OldestFirstRuns(max_messages=None)
    return lambda: shared
"""


def test_a_third_party_project_runs_the_suite(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_good.py").write_text(GOOD)
    (tmp_path / "test_broken.py").write_text(BROKEN)
    report = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "pytest_asyncio.plugin", "--asyncio-mode=strict", f"--junitxml={report}"]
    command += ["-o", "asyncio_default_fixture_loop_scope=function"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only what the command names
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 1, done.stdout[-3000:]  # the broken store fails
    outcomes: Counter[tuple[str, str]] = Counter()
    failed: list[str] = []
    for case in ET.parse(report).getroot().iter("testcase"):
        result = next((child.tag for child in case), "passed")
        outcomes[case.get("classname", ""), result] += 1
        if result == "failure":
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    suite = len(agenthost.testing.__all__) - 1  # every test, not the fixture
    assert outcomes["test_good", "passed"] == suite, outcomes
    assert failed == ["test_broken::test_runs_are_listed_newest_first_with_a_limit"]
    assert "assert ['run_" in done.stdout  # assertions are rewritten: the values show
