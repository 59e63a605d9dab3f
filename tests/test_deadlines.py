"""Turn deadlines in the Host: a slow model or a slow tool is stopped at the deadline,
the run is stored as failed with the reason and a closing message, and the session is
usable at once."""

from __future__ import annotations

import asyncio

import pytest

from agenthost import Agent, FunctionModel, Host, ModelRequest, tool
from agenthost.errors import InvalidInput, TurnTimeout
from agenthost.models import ModelReply
from agenthost.models.offline import tool_call

FOREVER = 3600.0


async def slow_model(request: ModelRequest) -> str:
    if request.messages[-1].content.startswith("slow"):
        await asyncio.sleep(FOREVER)  # a provider that never answers
    return "quick reply"


@tool
async def slow_tool(topic: str) -> str:
    """Look something up, very slowly."""
    await asyncio.sleep(FOREVER)
    return topic


def tool_model(request: ModelRequest) -> ModelReply | str:
    last = request.messages[-1]
    if last.role == "user" and last.content.startswith("tool"):
        return ModelReply(tool_calls=(tool_call("slow_tool", {"topic": "x"}),))
    return "quick reply"


async def _assert_failed_and_usable(host: Host, text: str) -> None:
    history = await host.history()
    assert [m.role for m in history][:1] == ["user"] and history[0].content == text
    closing = history[-1]
    assert closing.role == "assistant" and closing.meta is not None
    assert closing.meta["status"] == "failed" and "deadline" in closing.meta["error"]
    [run] = await host.runs()
    assert run.status == "failed" and run.error is not None and "0.05s" in run.error
    result = await host.run("and now?")  # the session is free at once
    assert result.reply == "quick reply"


async def test_a_slow_model_is_stopped_at_the_agents_deadline() -> None:
    agent = Agent(model=FunctionModel(slow_model), turn_timeout=0.05)
    async with Host(agent) as host:
        with pytest.raises(TurnTimeout, match=r"deadline of 0\.05s"):
            await host.run("slow question")
        await _assert_failed_and_usable(host, "slow question")


async def test_a_slow_tool_is_stopped_and_its_call_closed() -> None:
    agent = Agent(model=FunctionModel(tool_model), tools=(slow_tool,))
    async with Host(agent, turn_timeout=30) as host:
        with pytest.raises(TurnTimeout):
            await host.run("tool please", time_limit=0.05)  # the caller's limit, under the cap
        history = await host.history()
        assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
        assert history[2].tool_call_id == history[1].tool_calls[0].id  # the call is answered
        await _assert_failed_and_usable(host, "tool please")


async def test_the_callers_limit_never_exceeds_the_cap() -> None:
    agent = Agent(model=FunctionModel(slow_model))
    async with Host(agent, turn_timeout=0.05) as host:
        with pytest.raises(TurnTimeout, match=r"0\.05s"):
            await host.run("slow question", time_limit=3600)
        with pytest.raises(InvalidInput):
            host.stream("hi", time_limit=-1)
        assert (await host.run("fast", time_limit=5)).reply == "quick reply"


async def test_no_deadline_by_default_in_the_library() -> None:
    agent = Agent(model=FunctionModel(slow_model))
    async with Host(agent) as host:
        assert host.turn_timeout is None
        turn = asyncio.create_task(host.run("slow but patient"))
        done, _ = await asyncio.wait({turn}, timeout=0.1)
        assert not done  # still waiting for the model: nothing cut it short
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn


class StreamingModel:
    """Streams "one " at once, then "two" after the consumer asked for more."""

    name = "streaming"

    async def stream(self, request: ModelRequest):  # type: ignore[no-untyped-def]
        from agenthost.models.base import TextChunk

        yield TextChunk("one ")
        yield TextChunk("two")


async def test_a_deadline_passing_while_the_consumer_holds_a_chunk_ends_the_turn() -> None:
    """The deadline fires while the caller is busy with the first delta (nothing of the
    model's is awaited then): the turn ends at its next wait, as failed, not later."""
    async with Host(Agent(model=StreamingModel()), turn_timeout=30) as host:  # type: ignore[arg-type]
        events = host.stream("hi", time_limit=0.05)
        first = await anext(events)
        assert first.to_dict() == {"type": "delta", "text": "one "}
        await asyncio.sleep(0.2)  # the caller is slow: this is the behaviour under test
        rest = [event.to_dict() async for event in events]
        assert [e["type"] for e in rest] == ["error"]  # "two" was never asked of the model
        assert rest[0]["code"] == "turn_timeout"
        [run] = await host.runs()
        assert run.status == "failed" and "deadline" in (run.error or "")


async def test_a_cancel_from_elsewhere_is_not_taken_for_the_deadline() -> None:
    """Cancelling a turn whose model is streaming interrupts it; it is not a timeout."""
    started = asyncio.Event()

    async def hanging(request: ModelRequest) -> str:
        started.set()
        await asyncio.sleep(FOREVER)
        return "never"

    async with Host(Agent(model=FunctionModel(hanging)), turn_timeout=30) as host:
        task = asyncio.create_task(host.run("hi"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [run] = await host.runs()
        assert run.status == "interrupted"
