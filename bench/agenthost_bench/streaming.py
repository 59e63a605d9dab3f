"""B12: streamed turns over HTTP (SSE): time to the first delta, and what a delta costs.

``agenthost serve`` (1 worker, SQLite, as B5) runs :data:`agent`, whose model streams
a reply of N words as N chunks with no latency of its own, so every figure is
agenthost's work (and uvicorn's, and the client's). For N = 1 and N = ``WORDS``,
``turns`` turns are streamed one at a time (each its own user, ``"stream": true``) with
httpx: per turn, the time from sending the request to the first ``delta`` event, and
to the end of the stream. The server's CPU time over each series (``/proc``) divided
by its turns is its CPU per turn; the difference between the two series, divided by
``WORDS - 1``, is what one more delta costs the server in CPU and the client in time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agenthost import Agent, Usage
from agenthost.models.base import ModelChunk, ModelRequest, TextChunk
from agenthost_bench.inprocess import Metrics, Results

WORDS = 200


class WordsModel:
    """``"words N"`` gets N one-word chunks at once; anything else one chunk."""

    name = "words"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        text = request.messages[-1].content
        count = int(text.split()[1]) if text.startswith("words ") else 1
        for index in range(count):
            yield TextChunk(f"w{index} ")
        yield Usage(input_tokens=1, output_tokens=count, requests=1)


agent = Agent(name="streamer", model=WordsModel())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _series(url: str, pid: int, words: int, turns: int) -> Metrics:
    import httpx

    first: list[float] = []
    total: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for warm in range(5):  # connections, caches
            await client.post("/v1/chat", json={"message": "hi", "user_id": f"warm{warm}"})
        cpu = _cpu_seconds(pid)
        for turn in range(turns):
            body = {"message": f"words {words}", "user_id": f"w{words}-{turn}", "stream": True}
            began = time.perf_counter()
            seen = None
            tail = b""
            async with client.stream("POST", "/v1/chat", json=body) as response:
                async for chunk in response.aiter_raw():
                    if seen is None and b"event: delta" in chunk:
                        seen = time.perf_counter()
                    tail = (tail + chunk)[-4096:]
            ended = time.perf_counter()
            if response.status_code != 200 or seen is None or b'"type":"done"' not in tail:
                raise RuntimeError(f"streamed turn failed: {response.status_code} {tail!r}")
            first.append((seen - began) * 1000)
            total.append((ended - began) * 1000)
        cpu = _cpu_seconds(pid) - cpu
    return {
        "turns": float(turns),
        "first_delta_p50_ms": statistics.median(first),
        "first_delta_p99_ms": sorted(first)[max(0, int(len(first) * 0.99) - 1)],
        "turn_p50_ms": statistics.median(total),
        "server_cpu_us_per_turn": cpu / turns * 1e6,
    }


def run(turns: int) -> Results:
    from agenthost_bench.http import serving_process

    with tempfile.TemporaryDirectory(prefix="agenthost-bench-sse-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with serving_process(store, 1, Path(tmp), agent="agenthost_bench.streaming:agent") as (
            url,
            process,
        ):
            one = asyncio.run(_series(url, process.pid, 1, turns))
            many = asyncio.run(_series(url, process.pid, WORDS, turns))
    per_delta = {
        "server_cpu_us_per_delta": (many["server_cpu_us_per_turn"] - one["server_cpu_us_per_turn"])
        / (WORDS - 1),
        "wall_us_per_delta": (many["turn_p50_ms"] - one["turn_p50_ms"]) * 1000 / (WORDS - 1),
    }
    return {"1 delta": one, f"{WORDS} deltas": many, "per delta": per_delta}
