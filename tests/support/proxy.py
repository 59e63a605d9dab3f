"""A TCP proxy that breaks a streamed response mid-way, as a failing network does.

:class:`CuttingProxy` forwards every connection to a local port. The first
response that is a Server-Sent Events stream is cut after ``cut_after`` events:
both sockets are aborted, no orderly close. Every other connection, and every
later one, goes through untouched. ``CuttingProxy.in_thread`` runs it for
synchronous tests (the browser ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from support.serve import free_port


class CuttingProxy:
    def __init__(self, target_port: int, *, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # connections still open (keep-alive) end here
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, target_port: int, *, cut_after: int) -> Iterator[CuttingProxy]:
        proxy = cls(target_port, cut_after=cut_after)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop = asyncio.Event()

        async def main() -> None:
            async with proxy:
                ready.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield proxy
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers.add(upstream_writer)
        try:
            await self._pipe(reader, writer, upstream_reader, upstream_writer)
        finally:
            for end in (writer, upstream_writer):
                end.transport.abort()
                self._writers.discard(end)
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:

        async def upstream() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    upstream_writer.write(data)
                    await upstream_writer.drain()
            upstream_writer.close()

        async def downstream() -> None:
            frames, watching = 0, False
            with contextlib.suppress(ConnectionError):
                while data := await upstream_reader.read(65536):
                    if not watching and b"text/event-stream" in data and self.cuts == 0:
                        watching = True
                        data_start = data.find(b"\r\n\r\n")
                        frames -= data[: data_start + 4].count(b"\n\n")
                    if watching:
                        frames += data.count(b"\n\n")
                        if frames >= self.cut_after:
                            self.cuts += 1
                            writer.write(data)
                            await writer.drain()
                            writer.transport.abort()  # the network fails: no orderly close
                            upstream_writer.transport.abort()
                            return
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
