"""Failover: retries with backoff within a budget, then the next model; real loopback providers.

The providers are two real Chat Completions servers (``support.fake_openai``)
reached through the official SDK, told to answer 500, 429 or nothing at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from agenthost import Agent, FunctionModel, Host, ModelError, ModelRequest
from agenthost.messages import Message
from agenthost.models import TextChunk, complete
from agenthost.models.base import ModelChunk
from agenthost.models.failover import FailoverModel, RetryPolicy
from agenthost.models.providers import Provider
from support.fake_openai import FakeOpenAI, serve

NO_WAIT = RetryPolicy(retries=2, backoff=0)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeOpenAI, str, FakeOpenAI, str]]:
    primary, backup = FakeOpenAI(key="key-p", label="P"), FakeOpenAI(key="key-b", label="B")
    with serve(primary.app) as primary_url, serve(backup.app) as backup_url:
        yield primary, primary_url + "/v1", backup, backup_url + "/v1"
        primary.close()  # end any request still hanging
        backup.close()


@pytest.fixture
def fakes(
    servers: tuple[FakeOpenAI, str, FakeOpenAI, str],
) -> Iterator[tuple[FakeOpenAI, FakeOpenAI, list[Provider]]]:
    primary, primary_url, backup, backup_url = servers
    for fake in (primary, backup):
        fake.requests.clear()
        fake.failures.clear()
    providers = [
        Provider("p", base_url=primary_url, api_key="key-p", timeout=0.5),
        Provider("b", base_url=backup_url, api_key="key-b", timeout=5.0),
    ]
    yield primary, backup, providers


def team(*, fallbacks: tuple[str, ...] = ("b:backup-model",)) -> Agent:
    return Agent(name="a", model="p:primary-model", fallback_models=fallbacks)


async def test_5xx_and_429_are_retried_on_the_same_model(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    primary, backup, providers = fakes
    primary.failures = [500, 429]
    async with Host(team(), providers=providers, retry=NO_WAIT) as host:
        result = await host.run("hello", user_id="u")
        history = await host.history(user_id="u")
    assert result.reply.startswith("P echo: hello")
    assert result.model == "p:primary-model"
    assert len(primary.requests) == 3 and backup.requests == []
    assert history[-1].meta == {"agent": "a", "model": "p:primary-model"}


async def test_a_model_that_keeps_failing_falls_over_and_the_run_says_which_answered(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    primary, backup, providers = fakes
    primary.failures = [503, 502, 500]
    async with Host(team(), providers=providers, retry=NO_WAIT) as host:
        result = await host.run("hello", user_id="u")
        history = await host.history(user_id="u")
    assert result.reply.startswith("B echo: hello")
    assert result.model == "b:backup-model"
    assert history[-1].meta == {"agent": "a", "model": "b:backup-model"}
    assert len(primary.requests) == 3  # the first try and two retries
    assert [r["model"] for r in backup.requests] == ["backup-model"]


async def test_a_timeout_falls_over_to_the_next_model(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    primary, backup, providers = fakes
    primary.failures = ["timeout"]
    retry = RetryPolicy(retries=0)
    async with Host(team(), providers=providers, retry=retry) as host:
        result = await host.run("hello", user_id="u")
    assert result.model == "b:backup-model" and result.reply.startswith("B echo")
    assert len(primary.requests) == 1 and len(backup.requests) == 1


async def test_a_bad_key_is_not_retried_but_falls_over(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    primary, _, providers = fakes
    wrong = [Provider("p", base_url=providers[0].base_url, api_key="wrong"), providers[1]]
    async with Host(team(), providers=wrong, retry=NO_WAIT) as host:
        result = await host.run("hello", user_id="u")
    assert result.model == "b:backup-model"
    assert len(primary.requests) == 1  # 401: another try would not help


async def test_when_every_model_fails_the_error_names_each_and_the_run_is_failed(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    primary, backup, providers = fakes
    primary.failures = [500, 500, 500]
    backup.failures = [429, 429, 429]
    async with Host(team(), providers=providers, retry=NO_WAIT) as host:
        with pytest.raises(ModelError) as caught:
            await host.run("hello", user_id="u")
        runs = await host.runs(user_id="u")
        history = await host.history(user_id="u")
    message = caught.value.message
    assert message.startswith("every model failed: p:primary-model (3 attempts)")
    assert "b:backup-model (3 attempts)" in message and "429" in message
    assert runs[0].status == "failed" and runs[0].error == message
    assert history[-1].meta == {"status": "failed", "error": message}


async def test_a_single_provider_model_is_retried_too(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    primary, _, providers = fakes
    primary.failures = [500]
    async with Host(team(fallbacks=()), providers=providers, retry=NO_WAIT) as host:
        result = await host.run("hello", user_id="u")
    assert result.model == "p:primary-model" and len(primary.requests) == 2


class FakeTime:
    """A clock that moves only when the chain sleeps: backoffs without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def failing(name: str, error: ModelError, calls: list[str]) -> FunctionModel:
    def reply(request: ModelRequest) -> str:
        calls.append(name)
        raise error

    return FunctionModel(reply, name)


async def test_backoff_doubles_and_stops_at_the_budget() -> None:
    time = FakeTime()
    calls: list[str] = []
    flaky = failing("flaky", ModelError("down", retryable=True), calls)
    policy = RetryPolicy(retries=10, backoff=1.0, max_backoff=100.0, budget=10.0)
    chain = FailoverModel([flaky], policy=policy, sleep=time.sleep, clock=time.clock)
    with pytest.raises(ModelError) as caught:
        await complete(chain, ModelRequest("", [Message("user", "hi")]))
    assert time.waits == [1.0, 2.0, 4.0]  # 1 + 2 + 4 = 7; waiting 8 more would pass 10
    assert len(calls) == 4
    assert "flaky (4 attempts, retry budget 10s spent): down" in caught.value.message


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    time = FakeTime()
    calls: list[str] = []
    limited = failing("limited", ModelError("429", retryable=True, retry_after=3.0), calls)
    policy = RetryPolicy(retries=2, backoff=0.1, max_backoff=2.0, budget=60.0)
    chain = FailoverModel([limited], policy=policy, sleep=time.sleep, clock=time.clock)
    with pytest.raises(ModelError):
        await complete(chain, ModelRequest("", [Message("user", "hi")]))
    assert time.waits == [2.0, 2.0]


class BreaksMidStream:
    name = "breaks"

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        self.calls += 1
        yield TextChunk("half a rep")
        raise ModelError("connection reset", retryable=True)


async def test_a_failure_after_output_began_is_not_retried() -> None:
    broken = BreaksMidStream()
    backup = FunctionModel(lambda request: "backup", "backup")
    chain = FailoverModel([broken, backup], policy=NO_WAIT)
    with pytest.raises(ModelError, match="connection reset"):
        await complete(chain, ModelRequest("", [Message("user", "hi")]))
    assert broken.calls == 1  # the user saw "half a rep": no silent second answer


async def test_the_failed_turn_over_http_is_a_503_naming_the_models(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    import httpx

    from agenthost.server import create_app
    from agenthost.settings import Settings

    primary, backup, providers = fakes
    primary.failures = [500]
    backup.failures = [500]
    settings = Settings.load({"store": "memory://", "model": "offline"})
    host = Host(team(), providers=providers, retry=RetryPolicy(retries=0))
    app = create_app(settings, host=host)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/v1/chat", json={"message": "hi", "user_id": "u"})
    await host.close()
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_error"
    assert "p:primary-model" in error["message"] and "b:backup-model" in error["message"]
