"""``agenthost chat --url`` over a connection that breaks mid-turn.

A small TCP proxy between the CLI and the served app (in this process) cuts the first
streamed reply after its third event (both directions, as a network failure
does); every later connection goes through. The CLI then follows the run at
``/v1/runs/{id}/events`` from the last event id it received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agenthost.cli import main
from support.inprocess import InProcessServer
from support.proxy import CuttingProxy
from support.ticking import ticks


@pytest.fixture
def serve() -> Iterator[list[InProcessServer]]:
    started: list[InProcessServer] = []
    yield started
    for server in started:
        server.stop()


def start(started: list[InProcessServer], *args: str) -> InProcessServer:
    server = InProcessServer(["--store", "memory://", *args], agent="support.ticking:agent")
    started.append(server)
    return server.start()


async def test_the_cli_follows_its_run_again_after_the_connection_breaks(
    serve: list[InProcessServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start(serve, "--on-disconnect", "continue")
    async with CuttingProxy(server.port, cut_after=4) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        args = ["chat", "--user", "cli", "--url", url, "tick 12 40"]
        assert await asyncio.to_thread(main, args) == 0
    assert proxy.cuts == 1
    out, err = capsys.readouterr()
    assert out == "".join(ticks(12)) + "\n"  # every word once, in order
    assert "connection lost: following run run_" in err


async def test_without_continue_the_cli_reports_the_interrupted_turn(
    serve: list[InProcessServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start(serve)
    async with CuttingProxy(server.port, cut_after=4) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        args = ["chat", "--user", "cli", "--url", url, "tick 50 40"]
        assert await asyncio.to_thread(main, args) == 1  # the turn did not complete
    out, _err = capsys.readouterr()
    words, _, note = out.rpartition("\n[")
    assert "".join(ticks(50)).startswith(words)  # what arrived before the break
    assert len(words.split()) >= 4
    assert note == "interrupted: the caller went away]\n"
