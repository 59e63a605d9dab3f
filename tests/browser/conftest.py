"""Browser tests: the web console in real headless chromium against the app ``agenthost serve``
runs, served on a loopback port in this process.

One chromium per test session; each test gets a fresh tab (its own sessionStorage).
A failed test leaves a screenshot, the page's HTML and its console log under
``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from support.agents import AGENT
from support.browser import Console, missing, start_chromium
from support.inprocess import InProcessServer, sqlite_in_process

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:  # the wrapper yields to the report's maker and passes its result on
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def console_factory(
    chromium: WebDriver, request: pytest.FixtureRequest
) -> Iterator[Callable[[InProcessServer], Console]]:
    """``console_factory(server)``: a fresh tab on that server's console."""
    consoles: list[Console] = []

    def make(server: InProcessServer) -> Console:
        chromium.switch_to.new_window("tab")
        console = Console(chromium, server.url)
        consoles.append(console)
        return console

    yield make
    reports = request.node.stash.get(REPORTS, {})
    if any(r.failed for r in reports.values()) and consoles:
        consoles[-1].save_artifacts(request.node.nodeid)
    for handle in chromium.window_handles[1:]:  # keep one tab open for the next test
        chromium.switch_to.window(handle)
        chromium.close()
    chromium.switch_to.window(chromium.window_handles[0])


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """--auth none on loopback, the test agent (tools, approvals, "slow"), SQLite."""
    tmp: Path = tmp_path_factory.mktemp("console")
    with sqlite_in_process(tmp, AGENT, "--models", "offline") as server:
        yield server


@pytest.fixture
def console(
    console_factory: Callable[[InProcessServer], Console], open_server: InProcessServer
) -> Console:
    return console_factory(open_server)
