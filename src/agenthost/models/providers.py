"""Named providers, models addressed ``provider:model``, and one client per provider.

A provider is an endpoint with its credentials::

    [providers.deepseek]                 # any OpenAI-compatible endpoint
    base_url = "https://api.deepseek.com"
    api_key_env = "DEEPSEEK_API_KEY"     # the key is read from this variable

    [providers.claude]
    kind = "anthropic"
    api_key_env = "ANTHROPIC_API_KEY"

Then ``deepseek:deepseek-chat`` or ``claude:claude-sonnet-4-5`` name models. Three
providers exist without configuration: ``offline``, ``openai``
(``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``) and ``anthropic`` (``ANTHROPIC_API_KEY``
/ ``ANTHROPIC_BASE_URL``); a configured provider of the same name replaces one.

Every model of a provider shares that provider's one SDK client (its
connection pool, its key, its base URL), created on first use and closed by
:meth:`Providers.aclose` when the Host closes. A provider's key is only ever
sent to its own base URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from agenthost.errors import ConfigError
from agenthost.extras import require
from agenthost.models.base import Model

Kind = Literal["openai", "anthropic", "offline"]
KINDS: tuple[Kind, ...] = ("openai", "anthropic", "offline")


@dataclass(frozen=True, slots=True)
class Provider:
    """One endpoint: its protocol (``kind``), where it is and which variable holds its key.

    ``api_key`` (library use) takes precedence over ``api_key_env``; it is never printed.
    """

    name: str
    kind: Kind = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"provider {self.name!r}: kind must be one of {', '.join(KINDS)}")
        if not self.name or ":" in self.name:
            raise ConfigError(f"provider name {self.name!r} must be non-empty, without ':'")
        if self.timeout <= 0:
            raise ConfigError(f"provider {self.name!r}: timeout must be positive")

    def key(self) -> str | None:
        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def check_key(self) -> None:
        """Raise ``ConfigError`` if this provider cannot authenticate as configured.

        A provider that names ``api_key_env`` needs it set; the built-in ``openai`` and
        ``anthropic`` providers also run keyless against a local ``base_url``.
        """
        if self.kind == "offline" or self.key():
            return
        keyless_local = self.base_url is not None and self.name in BUILTIN
        if self.api_key_env and not keyless_local:
            raise ConfigError(
                f"provider {self.name!r} needs its API key in ${self.api_key_env}, which is not set"
            )
        if not self.base_url:
            raise ConfigError(
                f"provider {self.name!r} has no API key and no base_url "
                "(set api_key_env, or a base_url for a local endpoint)"
            )

    def describe(self) -> dict[str, Any]:
        """Safe to log or show: never the key."""
        return {
            "kind": self.kind,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "timeout": self.timeout,
        }


BUILTIN = ("offline", "openai", "anthropic")


def builtin_providers() -> list[Provider]:
    """The providers that need no configuration, from the usual environment variables."""
    return [
        Provider("offline", "offline"),
        Provider("openai", "openai", os.environ.get("OPENAI_BASE_URL"), "OPENAI_API_KEY"),
        Provider(
            "anthropic", "anthropic", os.environ.get("ANTHROPIC_BASE_URL"), "ANTHROPIC_API_KEY"
        ),
    ]


class Providers:
    """The providers a Host may use, and their shared clients."""

    def __init__(self, providers: Iterable[Provider] = ()) -> None:
        self._providers = {p.name: p for p in builtin_providers()}
        for provider in providers:
            self._providers[provider.name] = provider
        self._clients: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self._providers)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def split(self, spec: str) -> tuple[Provider, str]:
        """``"deepseek:deepseek-chat"`` -> (the deepseek provider, ``"deepseek-chat"``)."""
        name, _, model = spec.partition(":")
        provider = self._providers.get(name)
        if provider is None:
            raise ConfigError(
                f"unknown model {spec!r}: name it provider:model; providers: "
                + ", ".join(self._providers)
            )
        if provider.kind != "offline" and not model and name != "openai":
            raise ConfigError(f"model {spec!r} names no model: use {name}:<model name>")
        return provider, model

    def check(self, spec: str) -> None:
        """Raise ``ConfigError`` unless ``spec`` names a model this host can reach."""
        provider, _ = self.split(spec)
        if provider.kind != "offline":  # the SDK of the provider's kind: its extra
            require(provider.kind, f"model {spec!r}")
        provider.check_key()

    def model(self, spec: str) -> Model:
        """A model on its provider's shared client (the client is created on first use)."""
        provider, name = self.split(spec)
        if provider.kind == "offline":
            from agenthost.models import resolve_model

            return resolve_model("offline" + spec[len(provider.name) :])
        provider.check_key()
        client = self._clients.get(provider.name)
        if provider.kind == "anthropic":
            from agenthost.models.anthropic import AnthropicModel, anthropic_client

            if client is None:
                client = self._clients[provider.name] = anthropic_client(provider)
            return AnthropicModel(name, client=client, provider=provider.name)
        from agenthost.models.openai import OpenAIModel, openai_client

        if client is None:
            client = self._clients[provider.name] = openai_client(provider)
        return OpenAIModel(name or "gpt-4o-mini", client=client, provider=provider.name)

    async def aclose(self) -> None:
        """Close every client this registry created (once; they are not reopened)."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
