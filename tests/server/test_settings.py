"""Settings: precedence (flags > env > TOML), key formats, masking, safety checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agenthost.errors import ConfigError
from agenthost.settings import SETTINGS_ENV, Settings, settings_from_environment


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AGENTHOST_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_toml(text: str) -> Path:
    path = Path("agenthost.toml")
    path.write_text(text)
    return path


def test_flags_beat_environment_beat_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml('port = 1111\nstore = "memory://"\npolicy = "reject"\nmodels = ["offline:1ms"]\n')
    assert Settings.load().port == 1111
    monkeypatch.setenv("AGENTHOST_PORT", "2222")
    settings = Settings.load()
    assert (settings.port, settings.store, settings.policy) == (2222, "memory://", "reject")
    assert settings.models == ["offline:1ms"]
    assert Settings.load({"port": 3333, "store": None}).port == 3333


def test_defaults() -> None:
    settings = Settings.load()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.store == "sqlite:///agenthost.db"
    assert settings.model == "offline"
    assert settings.auth == "none"
    assert settings.max_body_bytes == 1 << 20
    assert settings.log_content is False


def test_openai_is_the_default_model_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert Settings.load().model == "openai:gpt-4o-mini"
    monkeypatch.setenv("AGENTHOST_OPENAI_MODEL", "gpt-4.1")
    assert Settings.load().model == "openai:gpt-4.1"
    monkeypatch.setenv("AGENTHOST_MODEL", "offline")
    assert Settings.load().model == "offline"


def test_api_keys_from_environment_and_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_API_KEYS", "k1:acme:alice, k2:acme:*,k:3:acme:!admin")
    keys = Settings.load().api_keys
    assert [(k.secret, k.tenant_id, k.user) for k in keys] == [
        ("k1", "acme", "alice"),
        ("k2", "acme", "*"),
        ("k:3", "acme", "!admin"),
    ]
    monkeypatch.delenv("AGENTHOST_API_KEYS")
    write_toml('[api_keys]\n"sk-bob" = "acme:bob"\n')
    [key] = Settings.load().api_keys
    assert (key.secret, key.tenant_id, key.user) == ("sk-bob", "acme", "bob")


def test_masked_settings_hide_every_secret() -> None:
    settings = Settings.load(
        {
            "api_keys": "very-secret-key:acme:alice",
            "jwt_secret": "jwt-secret-value",
            "store": "postgresql://app:db-password@db/agenthost",
            "coordination": "redis://:redis-password@cache:6379/0",
        }
    )
    text = repr(settings.masked()) + repr(settings)
    for secret in ("very-secret-key", "jwt-secret-value", "db-password", "redis-password"):
        assert secret not in text
    assert settings.masked()["api_keys"] == ["***:acme:alice"]


def test_workers_receive_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load(
        {"api_keys": "k1:acme:alice", "jwt_secret": "s3cret", "port": 9, "models": "a,b"}
    )
    import json

    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings.revealed()))
    received = settings_from_environment()
    assert received.revealed() == settings.revealed()


def test_bad_values_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="port"):
        Settings.load({"port": 70000})
    monkeypatch.setenv("AGENTHOST_AUTH", "magic")
    with pytest.raises(ConfigError, match="auth"):
        Settings.load()
    monkeypatch.delenv("AGENTHOST_AUTH")
    with pytest.raises(ConfigError, match="key:tenant:user"):
        Settings.load({"api_keys": "just-a-key"})
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(config_file="missing.toml")


def test_auth_none_binds_only_loopback_unless_told() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        Settings.load({"host": host}).check()
    with pytest.raises(ConfigError, match="--insecure-bind"):
        Settings.load({"host": "0.0.0.0"}).check()
    Settings.load({"host": "0.0.0.0", "insecure_bind": True}).check()
    Settings.load({"host": "0.0.0.0", "auth": "api-keys", "api_keys": "k:t:u"}).check()
    with pytest.raises(ConfigError, match="AGENTHOST_API_KEYS"):
        Settings.load({"auth": "api-keys"}).check()
    with pytest.raises(ConfigError, match="JWT"):
        Settings.load({"auth": "jwt"}).check()


def test_memory_store_with_several_workers_is_refused() -> None:
    Settings.load({"store": "memory://", "workers": 1}).check()
    Settings.load({"store": "sqlite:///x.db", "workers": 2}).check()
    with pytest.raises(ConfigError, match="each worker would see different sessions"):
        Settings.load({"store": "memory://", "workers": 2}).check()
