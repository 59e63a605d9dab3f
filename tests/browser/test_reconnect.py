"""The playground keeps a turn across a broken connection (a real cut, through a proxy).

The server keeps runs going without their client (``--on-disconnect continue``); the
page follows the run again at ``/v1/runs/{id}/events`` from the last event id it
saw, so the reply arrives whole, every word once, and Stop still stops the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.browser import Console
from support.inprocess import InProcessServer, sqlite_in_process
from support.proxy import CuttingProxy
from support.serve import uid
from support.ticking import ticks


@dataclass
class Behind:
    """The proxy, as the console factory sees a server: a URL."""

    url: str


@pytest.fixture(scope="module")
def continuing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    tmp: Path = tmp_path_factory.mktemp("reconnect")
    with sqlite_in_process(tmp, "support.ticking:agent", "--on-disconnect", "continue") as server:
        yield server


def test_a_turn_survives_a_broken_connection(
    console_factory: Callable[[Behind], Console], continuing: InProcessServer
) -> None:
    with CuttingProxy.in_thread(continuing.port, cut_after=3) as proxy:
        console = console_factory(Behind(proxy.url))
        console.open("/")
        pane = console.pane(0)
        console.wait_loaded(pane)
        console.set_user(pane, uid("cut"))
        turn = console.chat(pane, "tick 15 60")
        assert proxy.cuts == 1
        assert console.reply(turn) == "".join(ticks(15))


def test_stop_cancels_a_run_the_server_keeps_going(
    console_factory: Callable[[InProcessServer], Console], continuing: InProcessServer
) -> None:
    console = console_factory(continuing)
    console.open("/")
    pane = console.pane(0)
    console.wait_loaded(pane)
    user = uid("stop")
    console.set_user(pane, user)
    console.send(pane, "tick 500 50")
    turn = console.wait(lambda: console.turns(pane)[0], "the turn appears")
    console.wait(lambda: "t2" in console.reply(turn), "the first words")
    console.find(".stop", pane).click()
    console.wait_turn(pane, 1, "interrupted")
    messages = httpx.get(
        f"{continuing.url}/v1/sessions/default/messages", headers={"X-User-Id": user}
    ).json()["messages"]
    runs = httpx.get(
        f"{continuing.url}/v1/runs/{messages[0]['run_id']}", headers={"X-User-Id": user}
    ).json()
    assert runs["status"] == "interrupted"
    assert runs["error"] in ("canceled by the client", "the caller went away")
