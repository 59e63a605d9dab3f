"""The agent the protocol tests serve (``--agent protocol_agents:agent``).

It answers like the offline model ("My name is Alice" / "What is my name?"),
except that a message starting with "slow" streams one delta and then waits a
minute before finishing: a turn a test can cancel while it runs. The
``transfer`` tool needs a human's approval ("/tool transfer {...}").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agenthost import Agent, ModelRequest, OfflineModel, tool
from agenthost.models import ModelChunk, TextChunk

SLOW_SECONDS = 60.0


class SlowWhenAsked:
    name = "slow-when-asked"

    def __init__(self) -> None:
        self.offline = OfflineModel()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "user" and last.content.startswith("slow"):
            yield TextChunk("thinking...")
            await asyncio.sleep(SLOW_SECONDS)
            yield TextChunk(" done")
            return
        async for chunk in self.offline.stream(request):
            yield chunk


@tool(requires_approval=True)
def transfer(amount: int, to: str) -> str:
    """Move money: needs a human's approval.

    Args:
        amount: how much
        to: who receives it
    """
    return f"sent {amount} to {to}"


agent = Agent(
    name="proto-agent",
    description="Remembers your name; transfers money with your approval.",
    model=SlowWhenAsked(),
    tools=(transfer,),
)
