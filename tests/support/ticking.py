"""An agent whose turns take as long as a test asks: for runs followed across processes.

``--agent support.ticking:agent``. Its model answers ``"tick N MS"`` with N deltas
``"t1 "``, ``"t2 "``, ... ``"tN"``, one every MS milliseconds (provider latency, as
a real model streams), so a run is caught in progress by construction; anything
else is answered by the offline model. Every delta is distinct, so a follower
that loses or repeats one is caught.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agenthost import Agent, ModelRequest, OfflineModel
from agenthost.messages import Usage
from agenthost.models import ModelChunk, TextChunk


def ticks(count: int) -> list[str]:
    """The deltas of ``tick COUNT ...``, in order."""
    return [f"t{i} " if i < count else f"t{i}" for i in range(1, count + 1)]


class TickingModel:
    name = "ticking"

    def __init__(self) -> None:
        self.offline = OfflineModel()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        words = request.messages[-1].content.split() if request.messages else []
        if len(words) != 3 or words[0] != "tick":
            async for chunk in self.offline.stream(request):
                yield chunk
            return
        count, delay = int(words[1]), int(words[2]) / 1000
        for text in ticks(count):
            await asyncio.sleep(delay)
            yield TextChunk(text)
        yield Usage(input_tokens=3, output_tokens=count, requests=1)


agent = Agent(name="ticker", model=TickingModel())
