"""Agents the server tests serve (``--agent agenthost_test_agents:agent``).

The model answers like the offline model, except that a message starting with
"slow" streams one delta and then waits (up to a minute) before finishing: a
turn a test can catch in progress, to disconnect from it or collide with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agenthost import Agent, ModelRequest, OfflineModel, ToolContext, tool
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
def transfer(amount: int, to: str, context: ToolContext) -> str:
    """Move money: needs a human's approval.

    Args:
        amount: how much
        to: who receives it
    """
    context.state["transferred"] = context.state.get("transferred", 0) + amount
    return f"sent {amount} to {to} for {context.user_id}"


@tool
def lookup(topic: str) -> str:
    """Look something up."""
    return f"notes on {topic}"


agent = Agent(name="test-agent", model=SlowWhenAsked(), tools=(transfer, lookup))
