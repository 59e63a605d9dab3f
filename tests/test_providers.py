"""Named providers: models addressed ``provider:model``, chosen per session, keys kept apart.

Two real Chat Completions servers on different loopback URLs, each accepting
only its own key: two sessions of one user run on two providers at once, and
each server sees only its own key and its own model.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agenthost import Agent, ConfigError, Host, InvalidInput
from agenthost.bootstrap import build_host
from agenthost.models.providers import Provider, Providers
from agenthost.settings import Settings
from support.fake_openai import FakeOpenAI, serve


@pytest.fixture(scope="module")
def two_providers() -> Iterator[tuple[FakeOpenAI, str, FakeOpenAI, str]]:
    alpha, beta = (
        FakeOpenAI(key="key-alpha", label="ALPHA"),
        FakeOpenAI(key="key-beta", label="BETA"),
    )
    with serve(alpha.app) as alpha_url, serve(beta.app) as beta_url:
        yield alpha, alpha_url + "/v1", beta, beta_url + "/v1"


@pytest.fixture
def fakes(
    two_providers: tuple[FakeOpenAI, str, FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeOpenAI, FakeOpenAI, list[Provider]]]:
    alpha, alpha_url, beta, beta_url = two_providers
    for fake in (alpha, beta):
        fake.requests.clear()
        fake.keys_seen.clear()
    monkeypatch.setenv("ALPHA_API_KEY", "key-alpha")
    monkeypatch.setenv("BETA_API_KEY", "key-beta")
    providers = [
        Provider("alpha", base_url=alpha_url, api_key_env="ALPHA_API_KEY"),
        Provider("beta", base_url=beta_url, api_key_env="BETA_API_KEY"),
    ]
    yield alpha, beta, providers


async def test_two_sessions_of_one_user_on_two_providers_never_cross_keys(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    alpha, beta, providers = fakes
    agent = Agent(name="a", model="alpha:alpha-chat")
    async with Host(agent, providers=providers, models=["beta:beta-chat"]) as host:
        await host.create_session(
            user_id="u", session_id="on-beta", config={"model": "beta:beta-chat"}
        )

        async def talk(session: str, n: int) -> list[str]:
            replies = []
            for i in range(n):
                result = await host.run(f"{session} {i}", user_id="u", session_id=session)
                replies.append(f"{result.model} {result.reply}")
            return replies

        on_alpha, on_beta = await asyncio.gather(talk("default", 4), talk("on-beta", 3))
    assert all(r.startswith("alpha:alpha-chat ALPHA echo: default") for r in on_alpha)
    assert all(r.startswith("beta:beta-chat BETA echo: on-beta") for r in on_beta)
    assert alpha.keys_seen == ["Bearer key-alpha"] * 4
    assert beta.keys_seen == ["Bearer key-beta"] * 3
    assert {r["model"] for r in alpha.requests} == {"alpha-chat"}
    assert {r["model"] for r in beta.requests} == {"beta-chat"}
    sent_to_alpha = " ".join(str(r["messages"]) for r in alpha.requests)
    assert "on-beta" not in sent_to_alpha  # nor does a session's history


async def test_the_allow_list_spans_providers_and_refuses_others(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    _, _, providers = fakes
    async with Host(
        Agent(name="a", model="alpha:alpha-chat"), providers=providers, models=["beta:beta-chat"]
    ) as host:
        assert host.allowed_models == {"alpha:alpha-chat", "beta:beta-chat"}
        with pytest.raises(InvalidInput, match="allowed: alpha:alpha-chat, beta:beta-chat"):
            await host.run("hi", user_id="u", config={"model": "beta:other"})


async def test_models_of_a_provider_share_its_one_client_closed_with_the_host(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]],
) -> None:
    _, _, providers = fakes
    host = Host(
        Agent(name="a", model="alpha:alpha-chat"),
        providers=providers,
        models=["alpha:alpha-large", "beta:beta-chat"],
    )
    async with host:
        one, two = host.models.model("alpha:alpha-chat"), host.models.model("alpha:alpha-large")
        other = host.models.model("beta:beta-chat")
        assert one.client is two.client  # type: ignore[attr-defined]
        assert one.client is not other.client  # type: ignore[attr-defined]
        await host.run("hi", user_id="u")
    assert one.client.is_closed() and other.client.is_closed()  # type: ignore[attr-defined]


def test_a_missing_key_or_provider_fails_at_startup(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, providers = fakes
    monkeypatch.delenv("BETA_API_KEY")
    with pytest.raises(ConfigError, match=r"provider 'beta' needs its API key in \$BETA_API_KEY"):
        Host(Agent(name="a", model="alpha:x"), providers=providers, models=["beta:y"])
    with pytest.raises(ConfigError, match=r"unknown model 'gamma:z'.*providers: offline, openai"):
        Host(Agent(name="a", model="gamma:z"), providers=providers)
    with pytest.raises(ConfigError, match="names no model"):
        Providers(providers).check("alpha:")


def test_builtin_providers_need_keys_or_a_local_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        Providers().check("openai:gpt-4o-mini")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        Providers().check("anthropic:claude-sonnet-4-5")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")  # e.g. Ollama: no key
    Providers().check("openai:llama3")
    Providers().check("offline:5ms")


def test_an_anthropic_model_without_the_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setitem(sys.modules, "anthropic", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r'pip install "agenthost\[anthropic\]"'):
        Host(Agent(name="a", model="anthropic:claude-sonnet-4-5"))


async def test_providers_and_agents_from_toml(
    fakes: tuple[FakeOpenAI, FakeOpenAI, list[Provider]], tmp_path: Path
) -> None:
    alpha, beta, providers = fakes
    config = tmp_path / "agenthost.toml"
    config.write_text(
        f"""
store = "memory://"
default_agent = "front"
models = ["beta:beta-chat"]

[providers.alpha]
base_url = "{providers[0].base_url}"
api_key_env = "ALPHA_API_KEY"

[providers.beta]
base_url = "{providers[1].base_url}"
api_key_env = "BETA_API_KEY"
timeout = 20

[agents.front]
model = "alpha:alpha-chat"
description = "answers first"
handoffs = ["back"]

[agents.back]
model = "beta:beta-chat"
instructions = "You handle the back office."
tools = ["support.agents:lookup"]
"""
    )
    settings = Settings.load(config_file=config)
    assert settings.masked()["providers"]["beta"]["api_key_env"] == "BETA_API_KEY"
    host = build_host(settings.model_copy(update={"cleanup_interval": None}))
    async with host:
        assert host.agents.names == ["front", "back"] and host.agent.name == "front"
        back = host.agents.named("back")
        assert [t.name for t in back.tools] == ["lookup"] and back.handoffs == ()
        first = await host.run("hello", user_id="u")
        second = await host.run("hello", user_id="u", session_id="s2", agent="back")
    assert first.agent == "front" and first.reply.startswith("ALPHA echo: hello")
    assert second.agent == "back" and second.reply.startswith("BETA echo: hello")
    assert beta.requests[-1]["messages"][0]["content"] == "You handle the back office."
    assert alpha.keys_seen == ["Bearer key-alpha"] and beta.keys_seen == ["Bearer key-beta"]


def test_bad_agent_and_provider_tables_are_clear_errors(tmp_path: Path) -> None:
    from agenthost.bootstrap import build_agents

    config = tmp_path / "agenthost.toml"
    config.write_text('[agents.a]\nmodle = "offline"\n')
    with pytest.raises(ConfigError, match="modle"):
        Settings.load(config_file=config)
    config.write_text('[providers.x]\nkind = "grpc"\n')
    with pytest.raises(ConfigError, match="kind"):
        Settings.load(config_file=config)
    config.write_text('[agents.a]\nhandoffs = ["nobody"]\n')
    with pytest.raises(ConfigError, match="hands off to 'nobody', which is not served"):
        build_agents(Settings.load(config_file=config))
    config.write_text('[agents.a]\ntools = ["support.agents:nothing_here"]\n')
    with pytest.raises(ConfigError, match="cannot import tool"):
        build_agents(Settings.load(config_file=config))
