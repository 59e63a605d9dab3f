"""The models one Host uses: the allow-list, one instance per name, a failover chain per use.

- **Allowed**: every agent's model and fallback models, plus the extra names a
  session may choose (``--models``), across providers. Each name is checked at
  startup (its provider exists, its key is set), so a typo fails the server's
  start, not a user's turn.
- **One instance per name**, on its provider's shared client
  (:class:`~agenthost.models.providers.Providers`); closing the pool closes the
  clients.
- **A chain per use**: a turn of agent A in a session gets the session's chosen
  model (its ``config.model``) or A's model, then A's fallback models, wrapped
  in a :class:`~agenthost.models.failover.FailoverModel` when there is anything
  to fail over to or a network provider to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agenthost.models.base import Model
from agenthost.models.failover import FailoverModel, RetryPolicy
from agenthost.models.providers import Provider, Providers

if TYPE_CHECKING:
    from agenthost.agent import Agent


def model_name(model: Model | str) -> str:
    return model if isinstance(model, str) else model.name


class ModelPool:
    def __init__(
        self,
        agents: Iterable[Agent],
        *,
        default: Agent,
        extra: Iterable[str | Model] = (),
        providers: Providers | Iterable[Provider] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.providers = (
            providers if isinstance(providers, Providers) else Providers(providers or ())
        )
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._models: dict[str, Model] = {}
        self._remote: set[str] = set()
        self._chains: dict[tuple[str, ...], Model] = {}
        names: list[str] = []
        for agent in agents:
            names += [self._register(m) for m in (agent.model, *agent.fallback_models)]
        names += [self._register(m) for m in extra]
        self.allowed = frozenset(names)
        self.default = model_name(default.model)
        for name in sorted(self.allowed):
            if name not in self._models:
                self.providers.check(name)

    def _register(self, model: Model | str) -> str:
        if not isinstance(model, str):  # an adapter object: used as given, never closed here
            self._models.setdefault(model.name, model)
        return model_name(model)

    def model(self, name: str) -> Model:
        """The one instance of the model called ``name`` (created on first use)."""
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = self.providers.model(name)
            provider, _ = self.providers.split(name)
            if provider.kind != "offline":
                self._remote.add(name)
        return model

    def for_agent(self, agent: Agent, config: Mapping[str, Any]) -> Model:
        """What ``agent`` calls in a session with ``config``: its chain, shared by all turns."""
        primary = config.get("model") if config else None
        names = (primary or model_name(agent.model), *map(model_name, agent.fallback_models))
        chain = self._chains.get(names)
        if chain is None:
            unique = list(dict.fromkeys(names))
            models = [self.model(n) for n in unique]
            if len(models) == 1 and unique[0] not in self._remote:
                chain = models[0]
            else:
                chain = FailoverModel(models, policy=self.retry, sleep=self._sleep)
            self._chains[names] = chain
        return chain

    async def aclose(self) -> None:
        """Close the providers' clients (models given as objects are their owner's)."""
        self._chains.clear()
        for name in self._remote:  # made again, on new clients, if the host is used again
            self._models.pop(name, None)
        self._remote.clear()
        await self.providers.aclose()
