"""``agenthost chat --url`` over a connection that breaks mid-turn.

A small TCP proxy between the CLI and a real ``agenthost serve`` cuts the first
streamed reply after its third event (both directions, as a network failure
does); every later connection goes through. The CLI then follows the run at
``/v1/runs/{id}/events`` from the last event id it received.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost.cli import main
from support.processes import ServeProcess
from support.serve import free_port
from support.ticking import ticks


class CuttingProxy:
    """Forwards to ``target_port``; the first response is cut once ``cut_after`` SSE frames
    (blank-line ends) went through."""

    def __init__(self, target_port: int, *, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.port = free_port()
        self.cuts = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        cut = self.cuts == 0

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, watch: bool
        ) -> None:
            seen = 0
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    if watch and cut:
                        seen += data.count(b"\n\n")
                        if seen >= self.cut_after:
                            self.cuts += 1
                            sink.write(data)
                            await sink.drain()
                            sink.transport.abort()  # the network fails: no orderly close
                            upstream_writer.transport.abort()
                            return
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer, False),
            pipe(upstream_reader, writer, True),
            return_exceptions=True,
        )


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
        assert await asyncio.to_thread(main, args) == 0
    out, _err = capsys.readouterr()
    words, _, note = out.rpartition("\n[")
    assert "".join(ticks(50)).startswith(words)  # what arrived before the break
    assert len(words.split()) >= 4
    assert note == "interrupted: the caller went away]\n"
