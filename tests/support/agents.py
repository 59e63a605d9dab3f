"""The agents the server and protocol tests serve.

``--agent support.agents:agent`` (the server tests) and
``--agent support.agents:protocol_agent`` (the protocol tests) share one model:
it answers like the offline model ("My name is Alice" / "What is my name?"),
except that a message starting with "slow" streams one delta and then waits (up
to a minute) before finishing: a turn a test can catch in progress, to cancel,
disconnect from or collide with. Both have a ``transfer`` tool that needs a
human's approval ("/tool transfer {...}") and counts the amount in the session
state; the server tests' receipt also names the user, and their agent has a
``lookup`` tool as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agenthost import Agent, ModelRequest, OfflineModel, Tool, ToolContext, tool
from agenthost.models import ModelChunk, TextChunk

SLOW_SECONDS = 60.0

# what ``agenthost serve --agent`` takes for each of them
AGENT = "support.agents:agent"
PROTOCOL_AGENT = "support.agents:protocol_agent"


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


def transfer_tool(*, name_the_user: bool) -> Tool:
    """``transfer``: "sent 5 to bob", or "sent 5 to bob for alice" with ``name_the_user``."""

    @tool(requires_approval=True)
    def transfer(amount: int, to: str, context: ToolContext) -> str:
        """Move money: needs a human's approval.

        Args:
            amount: how much
            to: who receives it
        """
        context.state["transferred"] = context.state.get("transferred", 0) + amount
        receipt = f"sent {amount} to {to}"
        return f"{receipt} for {context.user_id}" if name_the_user else receipt

    return transfer


@tool
def lookup(topic: str) -> str:
    """Look something up."""
    return f"notes on {topic}"


agent = Agent(
    name="test-agent",
    model=SlowWhenAsked(),
    tools=(transfer_tool(name_the_user=True), lookup),
)

protocol_agent = Agent(
    name="proto-agent",
    description="Remembers your name; transfers money with your approval.",
    model=SlowWhenAsked(),
    tools=(transfer_tool(name_the_user=False),),
)


TEAM = "support.agents:team"


def team() -> list[Agent]:
    """The agents tests' team on the offline model: triage hands off to support or billing
    (each may hand back); billing's ``transfer`` needs approval, support has ``lookup``."""
    return [
        Agent(
            name="triage",
            model="offline",
            description="Finds out what the user needs.",
            handoffs=("support", "billing"),
        ),
        Agent(
            name="support",
            model="offline",
            description="Technical help.",
            tools=(lookup,),
            handoffs=("triage",),
        ),
        Agent(
            name="billing",
            model="offline",
            description="Invoices and payments.",
            tools=(transfer_tool(name_the_user=False),),
            handoffs=("triage",),
        ),
    ]
