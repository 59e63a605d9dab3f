"""OpenAIModel through the official SDK against a real loopback Chat Completions server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agenthost import Agent, Host, ModelError, tool
from agenthost.messages import Message, ToolCall
from agenthost.models import ModelSettings, complete
from agenthost.models.base import ModelRequest, TextChunk
from agenthost.models.failover import RetryPolicy
from agenthost.models.openai import OpenAIModel
from agenthost.models.providers import Provider
from support.fake_openai import FakeOpenAI, SilentServer, serve
from support.serve import free_port


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    with serve(server.app) as url:
        yield server, url + "/v1"


def model_for(url: str, **kwargs: object) -> OpenAIModel:
    return OpenAIModel("fake-model", base_url=url, api_key="test-key", max_retries=0, **kwargs)  # type: ignore[arg-type]


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


async def test_streams_text_and_usage(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    model = model_for(url)
    request = ModelRequest(
        "be nice", [Message("user", "hello there")], settings=ModelSettings(temperature=0.2)
    )
    chunks = [c async for c in model.stream(request)]
    text = "".join(c.text for c in chunks if isinstance(c, TextChunk))
    assert text.strip() == "echo: hello there [system: be nice]"
    assert len([c for c in chunks if isinstance(c, TextChunk)]) > 1, "expected several deltas"
    body = server.requests[-1]
    assert body["stream"] is True and body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": "be nice"}
    reply = await complete(model, request)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (7, 3)
    await model.aclose()


async def test_assembles_tool_call_deltas(fake: tuple[FakeOpenAI, str]) -> None:
    _, url = fake
    model = model_for(url)
    request = ModelRequest(
        "", [Message("user", "weather in both cities")], tools=[get_weather.schema()]
    )
    reply = await complete(model, request)
    await model.aclose()
    assert reply.tool_calls == [
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_weather", '{"city": "Rome"}'),
    ]


async def test_full_turn_with_tools_through_the_host(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    model = model_for(url)
    agent = Agent(model=model, tools=(get_weather,), instructions="weather bot")
    async with Host(agent) as host:
        result = await host.run("what is the weather?", user_id="u")
        assert result.reply.strip() == "tool said sunny in Paris"
        sent = server.requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
        assert sent[2]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert sent[3] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny in Paris"}
        assert result.usage.requests == 2 and result.usage.input_tokens == 14
    await model.aclose()


async def test_provider_error_becomes_model_error_and_session_recovers(
    fake: tuple[FakeOpenAI, str],
) -> None:
    server, url = fake
    model = model_for(url)
    async with Host(Agent(model=model)) as host:
        server.fail_next = 1
        with pytest.raises(ModelError, match="openai:fake-model"):
            await host.run("first", user_id="u")
        ok = await host.run("second", user_id="u")
        assert "echo: second" in ok.reply
        assert [m.role for m in await host.history(user_id="u")] == ["user", "assistant"] * 2
    await model.aclose()


async def test_bad_credentials_are_a_model_error(fake: tuple[FakeOpenAI, str]) -> None:
    _, url = fake
    model = OpenAIModel("fake-model", base_url=url, api_key="wrong", max_retries=0)
    with pytest.raises(ModelError, match="AuthenticationError"):
        await complete(model, ModelRequest("", [Message("user", "hi")]))
    await model.aclose()


async def test_a_provider_that_never_answers_fails_the_turn_within_its_budget() -> None:
    """It accepts and never answers: each attempt ends at the timeout, the error names the
    provider's URL (never the key) and the cause, and the session is usable at once."""
    with SilentServer() as silent:
        provider = Provider("openai", base_url=silent.url + "/v1", api_key="sk-secret", timeout=0.3)
        agent, retry = Agent(model="openai:slow"), RetryPolicy(retries=1, budget=10)
        async with Host(
            agent, providers=[provider], retry=retry, policy="reject", models=["offline"]
        ) as host:
            with pytest.raises(ModelError) as info:
                await asyncio.wait_for(host.run("hi", user_id="u", session_id="s"), 60)
            message = info.value.message
            assert message.startswith("openai:slow (2 attempts): ")
            assert f"openai:slow at {silent.url}/v1: no answer within 0.3 s" in message
            assert "model_timeout" in message and "sk-secret" not in message
            assert silent.accepted == 2  # the first attempt and one retry
            # reject policy: a turn still holding the session would be SessionBusy
            ok = await host.run(
                "My name is Bo", user_id="u", session_id="s", config={"model": "offline"}
            )
            assert ok.reply == "Nice to meet you, Bo!"


async def test_a_provider_that_refuses_connections_is_named_with_the_cause() -> None:
    port = free_port()
    model = OpenAIModel(
        "m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=5, max_retries=0
    )
    with pytest.raises(ModelError) as info:
        await complete(model, ModelRequest("", [Message("user", "hi")]))
    assert info.value.message == (
        f"openai:m at http://127.0.0.1:{port}/v1: cannot connect: Connection refused"
    )
    assert info.value.retryable
    await model.aclose()
