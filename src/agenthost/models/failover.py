"""Failover: retry a failing provider with backoff, then fall over to the next model.

A :class:`FailoverModel` is a chain of models (an agent's model, then its
``fallback_models``). A call goes to the first model; if it fails before
producing anything:

- a retryable failure (timeout, lost connection, 429, 5xx; see
  ``ModelError.retryable``) is tried again after a backoff (doubling from
  ``RetryPolicy.backoff``, or the provider's ``Retry-After`` when it gives one),
  while the time spent on this model stays within ``RetryPolicy.budget``;
- then, or at once for any other failure (a bad key, an unknown model), the
  next model of the chain is tried the same way.

The stream says which model answered (a ``Served`` chunk before its first
output), so the turn stores it with the reply. A failure after output has
begun is not retried: the user has seen part of the reply already. When every
model failed, the error names each one and what it said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from agenthost.errors import ModelError
from agenthost.models.base import Model, ModelChunk, ModelRequest, Served


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one model before falling over to the next."""

    retries: int = 2
    """Extra attempts per model after the first, for retryable failures."""
    backoff: float = 0.5
    """Seconds before the first retry; doubled for each one after it."""
    max_backoff: float = 8.0
    budget: float = 30.0
    """Seconds one model may take, attempts and waits together, before the chain moves on."""

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0 or self.budget <= 0:
            raise ValueError("retries and backoffs must be >= 0 and the budget > 0")

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = the first retry)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_backoff)
        return float(min(self.backoff * (2**attempt), self.max_backoff))


class FailoverModel:
    """A chain of models tried in order, each retried within the policy's budget."""

    def __init__(
        self,
        models: Sequence[Model],
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not models:
            raise ValueError("a failover chain needs at least one model")
        self.models = tuple(models)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    @property
    def name(self) -> str:
        return self.models[0].name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        policy = self.policy
        failures: list[str] = []
        retryable = True
        for model in self.models:
            began = self._clock()
            attempt = 0
            while True:
                stream = model.stream(request)
                started = False
                try:
                    async for chunk in stream:
                        if not started:
                            started = True
                            yield Served(model.name)
                        yield chunk
                    return
                except ModelError as exc:
                    if started:
                        raise
                    retryable = exc.retryable
                    wait = policy.wait(attempt, exc.retry_after)
                    again = exc.retryable and attempt < policy.retries
                    over_budget = again and self._clock() - began + wait > policy.budget
                    if not again or over_budget:
                        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                        spent = f", retry budget {policy.budget:g}s spent" if over_budget else ""
                        failures.append(f"{model.name} ({tries}{spent}): {exc.message}")
                        break
                    attempt += 1
                    await self._sleep(wait)
                finally:
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()
        prefix = "every model failed: " if len(self.models) > 1 else ""
        raise ModelError(prefix + "; ".join(failures), retryable=retryable)

    async def aclose(self) -> None:
        """Nothing of its own to close: the models' clients belong to their providers."""
