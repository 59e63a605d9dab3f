"""``agenthost chat --url`` over a connection that breaks mid-turn.

A small TCP proxy between the CLI and a real ``agenthost serve`` cuts the first
streamed reply after its third event (both directions, as a network failure
does); every later connection goes through. The CLI then follows the run at
``/v1/runs/{id}/events`` from the last event id it received.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost.cli import main
from support.processes import ServeProcess
from support.proxy import CuttingProxy
from support.ticking import ticks


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for process in started:
        await process.stop()


async def start(started: list[ServeProcess], tmp_path: Path, *args: str) -> ServeProcess:
    process = ServeProcess(
        tmp_path, "serve", "--store", "memory://", "--agent", "support.ticking:agent", *args
    )
    started.append(process)
    return await process.start()


async def test_the_cli_follows_its_run_again_after_the_connection_breaks(
    serve: list[ServeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start(serve, tmp_path, "--on-disconnect", "continue")
    async with CuttingProxy(server.port, cut_after=4) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        args = ["chat", "--user", "cli", "--url", url, "tick 12 40"]
        assert await asyncio.to_thread(main, args) == 0
    assert proxy.cuts == 1
    out, err = capsys.readouterr()
    assert out == "".join(ticks(12)) + "\n"  # every word once, in order
    assert "connection lost: following run run_" in err


async def test_without_continue_the_cli_reports_the_interrupted_turn(
    serve: list[ServeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start(serve, tmp_path)
    async with CuttingProxy(server.port, cut_after=4) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        args = ["chat", "--user", "cli", "--url", url, "tick 50 40"]
        assert await asyncio.to_thread(main, args) == 1  # the turn did not complete
    out, _err = capsys.readouterr()
    words, _, note = out.rpartition("\n[")
    assert "".join(ticks(50)).startswith(words)  # what arrived before the break
    assert len(words.split()) >= 4
    assert note == "interrupted: the caller went away]\n"
