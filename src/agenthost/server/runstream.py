"""Runs over HTTP: Server-Sent Events with ids, keep-alives, and what a face does when
its client leaves.

A run started by a request streams to that request from memory; the same events,
with the same ids, are what ``GET /v1/runs/{run_id}/events`` serves from any
process (see :mod:`agenthost.runs`). Each frame carries ``id: <seq>``, so a
client that lost its connection resumes with ``Last-Event-ID`` (a run that
publishes nothing resumes only in its own process; elsewhere its end is all
there is). A comment line goes out every ``KEEPALIVE`` seconds while a
run is quiet, so proxies keep the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from agenthost.runevents import RunEvent, error_of
from agenthost.runs import LiveRun
from agenthost.server.requestid import current_request_id
from agenthost.server.sse import EventStreamResponse, aclose, payload

RUN_HEADER = "X-Agenthost-Run-Id"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEPALIVE = 15.0
LEFT = "the caller went away"


def frame(event: RunEvent) -> bytes:
    data = event.data
    if event.type == "error":  # as every error the server sends: the request's id
        request_id = current_request_id()
        if request_id is not None:
            data = {**data, "request_id": request_id}
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event.type.encode(), event.seq, payload(data))


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


async def with_keepalive(
    events: AsyncIterator[RunEvent], every: float = KEEPALIVE
) -> AsyncIterator[list[RunEvent] | None]:
    """``events`` in batches (all that arrived since the last batch was taken: a fast
    stream goes out in few writes), with a ``None`` whenever ``every`` seconds pass
    without one."""
    queue: asyncio.Queue[object] = asyncio.Queue()  # what the run holds anyway: no bound

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        except Exception as exc:
            queue.put_nowait(_Failed(exc))
            return
        queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            if queue.empty():
                try:
                    item = await asyncio.wait_for(queue.get(), every)
                except TimeoutError:
                    yield None
                    continue
            else:
                item = queue.get_nowait()
            batch: list[RunEvent] = []
            while isinstance(item, RunEvent):
                batch.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                yield batch
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await aclose(events)


def stream_response(
    events: AsyncIterator[RunEvent], *, headers: dict[str, str]
) -> EventStreamResponse:
    """The response for a run's events; headers (the run id) go out at once."""

    def encode(batch: Any) -> bytes:
        if batch is None:
            return b": keep-alive\n\n"
        return b"".join([frame(event) for event in batch])

    return EventStreamResponse(None, with_keepalive(events), encode=encode, headers=headers)


async def started_by_request(run: LiveRun, *, detached: bool) -> AsyncIterator[RunEvent]:
    """The events of a run, for the request that started it.

    If that client leaves before the end, the run is interrupted ("the caller went
    away"), unless it is ``detached`` (background, or ``--on-disconnect continue``):
    then it runs on, to be followed at ``/v1/runs/{run_id}/events``.
    """
    ended = False
    try:
        async for event in run.subscribe(run.first_seq - 1):  # from memory, even once ended
            ended = event.terminal
            yield event
    finally:
        if not ended and not detached:
            with contextlib.suppress(Exception):
                run.cancel(LEFT)
                await run.wait()


def chat_result(data: dict[str, Any]) -> dict[str, Any]:
    """A terminal event as the ``POST /v1/chat`` JSON body (an error event raises)."""
    if data.get("type") == "error":
        raise error_of(str(data.get("code")), str(data.get("message")))
    return {k: v for k, v in data.items() if k != "type"}


def run_headers(run_id: str, *, replayed: bool = False) -> dict[str, str]:
    headers = {RUN_HEADER: run_id}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return headers
