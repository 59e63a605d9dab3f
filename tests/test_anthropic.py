"""AnthropicModel through the official SDK against a real loopback Messages API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agenthost import Agent, Host, ModelError, tool
from agenthost.messages import Message, ToolCall
from agenthost.models import ModelSettings, complete
from agenthost.models.anthropic import AnthropicModel, to_anthropic
from agenthost.models.base import ModelRequest, TextChunk
from agenthost.models.failover import RetryPolicy
from agenthost.models.providers import Provider
from support.fake_anthropic import FakeAnthropic
from support.fake_openai import serve

KEY = "anthropic-test-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeAnthropic, str]]:
    server = FakeAnthropic(key=KEY)
    with serve(server.app) as url:
        yield server, url


def model_for(url: str, key: str = KEY) -> AnthropicModel:
    return AnthropicModel("claude-test", api_key=key, base_url=url)


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"snow in {city}"


async def test_streams_text_with_system_settings_and_usage(
    fake: tuple[FakeAnthropic, str],
) -> None:
    server, url = fake
    model = model_for(url)
    settings = ModelSettings(temperature=1.7, max_tokens=300, top_p=0.9)
    request = ModelRequest("be brief", [Message("user", "hello there")], settings=settings)
    chunks = [c async for c in model.stream(request)]
    await model.aclose()
    texts = [c.text for c in chunks if isinstance(c, TextChunk)]
    assert "".join(texts).strip() == "echo: hello there [system: be brief]"
    assert len(texts) > 1, "expected several deltas"
    body = server.requests[-1]
    assert body["model"] == "claude-test" and body["stream"] is True
    assert body["system"] == "be brief" and body["max_tokens"] == 300
    assert body["temperature"] == 1.0 and body["top_p"] == 0.9  # clamped to the API's range
    assert server.keys_seen[-1] == KEY
    assert server.headers[-1]["anthropic-version"]
    usage = chunks[-1]
    assert (usage.input_tokens, usage.output_tokens, usage.requests) == (11, 9, 1)  # type: ignore[union-attr]


async def test_assembles_a_tool_use_split_across_deltas(fake: tuple[FakeAnthropic, str]) -> None:
    server, url = fake
    model = model_for(url)
    request = ModelRequest("", [Message("user", "weather please")], tools=[get_weather.schema()])
    reply = await complete(model, request)
    await model.aclose()
    assert reply.text.strip() == "Let me look."
    assert reply.tool_calls == [ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}')]
    sent = server.requests[-1]["tools"]
    assert sent[0]["name"] == "get_weather" and sent[0]["input_schema"]["type"] == "object"


async def test_a_host_turn_with_a_tool_round_trips_through_the_messages_shape(
    fake: tuple[FakeAnthropic, str],
) -> None:
    server, url = fake
    provider = Provider("claude", "anthropic", url, api_key=KEY)
    agent = Agent(name="a", model="claude:claude-test", tools=(get_weather,))
    async with Host(agent, providers=[provider]) as host:
        result = await host.run("weather please", user_id="u")
        assert result.reply.strip() == "tool said snow in Oslo"
        assert result.model == "claude:claude-test"
    second = server.requests[-1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert second[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "snow in Oslo"}
    ]


def test_history_maps_onto_alternating_roles() -> None:
    call = ToolCall("t1", "lookup", '{"q": "x"}')
    history = [
        Message("assistant", "earlier reply"),  # a window that starts mid-conversation
        Message("user", "first"),
        Message("user", "second"),
        Message("assistant", "", (call,)),
        Message("tool", "oops", tool_call_id="t1", name="lookup", meta={"error": True}),
        Message("system", "extra rule"),
        Message("user", "and now?"),
    ]
    system, messages = to_anthropic("rules", history)
    assert system == "rules\n\nextra rule"
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert [b["text"] for b in messages[2]["content"]] == ["first", "second"]
    assert messages[3]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}
    ]
    result, text = messages[4]["content"]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": "oops",
        "is_error": True,
    }
    assert text == {"type": "text", "text": "and now?"}


@pytest.mark.parametrize(
    ("failure", "retryable"), [(529, True), (500, True), (429, True), (400, False)]
)
async def test_provider_errors_say_whether_a_retry_may_help(
    fake: tuple[FakeAnthropic, str], failure: int, retryable: bool
) -> None:
    server, url = fake
    server.failures = [failure]
    model = model_for(url)
    with pytest.raises(ModelError) as caught:
        await complete(model, ModelRequest("", [Message("user", "hi")]))
    await model.aclose()
    assert caught.value.retryable is retryable
    assert "claude-test" in caught.value.message


async def test_a_bad_key_is_a_model_error_that_is_not_retried(
    fake: tuple[FakeAnthropic, str],
) -> None:
    _, url = fake
    model = model_for(url, key="wrong")
    with pytest.raises(ModelError) as caught:
        await complete(model, ModelRequest("", [Message("user", "hi")]))
    await model.aclose()
    assert caught.value.retryable is False and "AuthenticationError" in caught.value.message


async def test_an_overload_mid_stream_is_retried_by_the_chain(
    fake: tuple[FakeAnthropic, str],
) -> None:
    server, url = fake
    server.failures = ["stream-error"]
    provider = Provider("claude", "anthropic", url, api_key=KEY)
    agent = Agent(name="a", model="claude:claude-test")
    before = len(server.requests)
    retry = RetryPolicy(retries=2, backoff=0)
    async with Host(agent, providers=[provider], retry=retry) as host:
        result = await host.run("hello", user_id="u")
    assert result.reply.startswith("echo: hello")
    assert len(server.requests) - before == 2  # the overloaded stream, then the answer
