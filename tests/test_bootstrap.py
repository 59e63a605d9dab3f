"""One bootstrap: settings -> Host (agent, models with their timeouts, store, coordinator)."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agenthost.bootstrap import build_host, build_providers, load_agent, preflight
from agenthost.errors import ConfigError, StoreUnavailable
from agenthost.server import create_app
from agenthost.settings import Settings
from support.fake_openai import SilentServer
from support.serve import free_port


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("AGENTHOST_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(sys.path))  # load_agent adds the cwd
    yield


def timeouts(settings: Settings) -> dict[str, float]:
    return {p.name: p.timeout for p in build_providers(settings)}


def test_provider_timeouts_from_settings_toml_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert timeouts(Settings.load())["openai"] == 30.0
    Path("agenthost.toml").write_text(
        textwrap.dedent(
            """
            model_timeout = 12
            [providers.deepseek]
            base_url = "http://127.0.0.1:9/v1"
            timeout = 90
            [providers.local]
            base_url = "http://127.0.0.1:9/v1"
            """
        )
    )
    loaded = timeouts(Settings.load())
    assert (loaded["openai"], loaded["anthropic"]) == (12.0, 12.0)
    assert (loaded["deepseek"], loaded["local"]) == (90.0, 12.0)
    monkeypatch.setenv("AGENTHOST_MODEL_TIMEOUT", "5")
    assert timeouts(Settings.load())["local"] == 5.0
    assert timeouts(Settings.load({"model_timeout": 2.5}))["openai"] == 2.5


def test_bad_timeouts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"model_timeout: input should be greater than 0"):
        Settings.load({"model_timeout": 0})
    Path("agenthost.toml").write_text("[providers.x]\ntimeout = -1\n")
    with pytest.raises(ConfigError, match=r"providers.x.timeout"):
        Settings.load()


async def test_a_silent_provider_with_a_configured_budget_over_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The settings' timeout reaches the provider; the turn fails with a 503 that names
    the provider's URL; the session takes the next turn at once (reject policy)."""
    with SilentServer() as silent:
        monkeypatch.setenv("OPENAI_BASE_URL", silent.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown")
        settings = Settings.load(
            {
                "store": "memory://",
                "model": "openai:slow",
                "models": "offline",
                "model_timeout": 0.3,
                "model_retries": 1,
                "model_retry_budget": 10,
                "policy": "reject",
            }
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ask = {"message": "hi", "user_id": "u", "session_id": "s"}
            failed = await client.post("/v1/chat", json=ask)
            assert failed.status_code == 503
            error = failed.json()["error"]
            assert error["code"] == "model_error"
            assert error["message"].startswith(
                f"openai:slow (2 attempts): openai:slow at {silent.url}/v1: no answer within 0.3 s"
            )
            assert "sk-never-shown" not in failed.text
            assert silent.accepted == 2
            ok = await client.post("/v1/chat", json={**ask, "config": {"model": "offline"}})
            assert ok.status_code == 200, ok.text
        await app.state.host.close()


def test_an_agent_module_in_the_current_directory_is_importable() -> None:
    Path("here_agent.py").write_text(
        "from agenthost import Agent\nagent = Agent(name='here')\ndef make():\n"
        "    return Agent(name='made')\n"
    )
    assert load_agent("here_agent:agent").name == "here"
    assert load_agent("here_agent:make").name == "made"


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("def broken(:\n", "importing agent 'bad_agent:agent' failed: SyntaxError"),
        ("raise RuntimeError('no key')\n", "failed: RuntimeError: no key"),
        ("agent = 3\n", "'bad_agent:agent' is a int, not an agenthost.Agent"),
        ("x = 1\n", "cannot import agent 'bad_agent:agent'"),
    ],
)
def test_an_agent_that_cannot_load_is_one_config_error(source: str, says: str) -> None:
    Path("bad_agent.py").write_text(source)
    sys.modules.pop("bad_agent", None)
    with pytest.raises(ConfigError) as info:
        load_agent("bad_agent:agent")
    assert says in info.value.message
    sys.modules.pop("bad_agent", None)


async def test_preflight_names_the_service_and_the_setting(tmp_path: Path) -> None:
    down = free_port()
    with pytest.raises(StoreUnavailable) as info:
        await preflight(Settings.load({"store": f"sqlite:///{tmp_path}"}))
    assert info.value.message.startswith(f"cannot open the store at sqlite:///{tmp_path}")
    assert info.value.message.endswith("or change --store (AGENTHOST_STORE)")
    settings = Settings.load({"store": "memory://", "coordination": f"redis://h:{down}/0"})
    with pytest.raises(StoreUnavailable) as info:
        await preflight(settings.model_copy(update={"coordination": f"redis://127.0.0.1:{down}"}))
    assert "cannot open the lock service at redis://127.0.0.1" in info.value.message
    assert "change --coordination (AGENTHOST_COORDINATION)" in info.value.message
    await preflight(Settings.load({"store": f"sqlite:///{tmp_path / 'ok.db'}"}))  # no error


async def test_the_cli_host_has_no_sweeper() -> None:
    host = build_host(Settings.load({"store": "memory://"}), sweeper=False)
    async with host:
        assert host.cleanup_interval is None
