"""The console in a real browser behind nginx under ``/agents`` (the README's snippet): the
playground loads, a turn streams through the proxy and the session list is the user's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from support.agents import AGENT
from support.browser import Console
from support.inprocess import sqlite_in_process
from support.nginx import PREFIX, Nginx, Site, nginx_binary
from support.serve import free_port, uid


@pytest.fixture(scope="module")
def public_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The console's public URL: http://127.0.0.1:PORT/agents, nginx in front."""
    nginx_binary()  # or skip
    tmp = tmp_path_factory.mktemp("console-prefix")
    args = ["--root-path", PREFIX, "--forwarded-allow-ips", "127.0.0.1"]
    with sqlite_in_process(tmp, AGENT, *args) as server:
        site = Site(free_port(), server.port, tls=False)
        with Nginx(tmp, [site]):
            yield site.url


@pytest.fixture
def console(chromium: WebDriver, public_url: str) -> Iterator[Console]:
    chromium.switch_to.new_window("tab")
    yield Console(chromium, public_url)
    chromium.close()
    chromium.switch_to.window(chromium.window_handles[0])


def test_the_console_works_under_the_prefix(console: Console, public_url: str) -> None:
    user = uid("pre")
    console.open("/")
    pane = console.pane(0)
    console.wait_loaded(pane)
    console.set_user(pane, user)
    turn = console.chat(pane, "My name is Pia")
    assert console.reply(turn) == "Nice to meet you, Pia!"
    assert console.driver.current_url == f"{public_url}/"
    # the turn went through the proxy to the user's own session
    listed = httpx.get(f"{public_url}/v1/sessions", headers={"X-User-Id": user}).json()
    assert len(listed["sessions"]) == 1
