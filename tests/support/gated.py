"""A model a test steps through: one delta per ``release()``, so a test decides exactly
where a run is when it follows, resumes or cancels it (no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agenthost.messages import Usage
from agenthost.models import ModelChunk, ModelRequest, TextChunk


class GatedModel:
    """Replies "w1 w2 ... wN" (N from a message "count N"), one word per opened gate."""

    name = "gated"

    def __init__(self) -> None:
        self.gate: asyncio.Queue[None] = asyncio.Queue()
        self.calls = 0

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.put_nowait(None)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        self.calls += 1
        last = request.messages[-1].content
        count = int(last.split()[1]) if last.startswith("count ") else 1
        for i in range(1, count + 1):
            await self.gate.get()
            yield TextChunk(f"w{i} " if i < count else f"w{i}")
        yield Usage(input_tokens=1, output_tokens=count, requests=1)
