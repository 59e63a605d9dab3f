"""The one exception hierarchy of agenthost.

Every error a caller can see derives from :class:`AgentHostError` and carries a
stable machine-readable ``code``. The HTTP layer maps these classes to status
codes in exactly one place (``agenthost.server.errors``)::

    AgentHostError
    ├── InvalidInput            bad argument: an id, a message, a config value
    │   ├── InvalidId           an id that is empty, too long or has control characters
    │   └── IdempotencyKeyReused  an idempotency key sent again with a different request
    ├── NotFound                unknown session, run, approval (or not the caller's)
    ├── SessionBusy             a turn is running on this key and the policy is "reject"
    ├── Conflict                the session changed under us (another process wrote to it)
    │   └── SessionErased       the session was erased while a turn or write was using it
    ├── QuotaExceeded           a limit was hit (request size, or one of these:)
    │   ├── RateLimited             requests per minute (``rate_limited``)
    │   ├── TokenBudgetExhausted    tokens per day (``token_budget_exhausted``)
    │   ├── TooManyConcurrentTurns  turns running at once (``too_many_concurrent_turns``)
    │   └── TooManyLiveSessions     sessions in use at once (``too_many_live_sessions``)
    ├── Unauthorized            missing or bad credentials
    ├── Forbidden               credentials valid, resource not theirs
    ├── ModelError              the model provider failed
    ├── TurnTimeout             the turn ran past its deadline (model and tools together)
    ├── ToolError               a tool failed (an MCP server down, slow or erring): reported
    │                           to the model as the tool's result, never raised to a caller
    ├── StoreUnavailable        the session store cannot be reached
    └── ConfigError             the server or agent is misconfigured
        └── MissingExtra        an optional feature used without its extra (also an ImportError)
"""

from __future__ import annotations


class AgentHostError(Exception):
    """Base of every agenthost error."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(AgentHostError, ValueError):
    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidId(InvalidInput):
    code = "invalid_id"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


class NotFound(AgentHostError, LookupError):
    code = "not_found"


class SessionBusy(AgentHostError):
    code = "session_busy"


class Conflict(AgentHostError):
    code = "conflict"

    def __init__(self, message: str, *, exists: bool | None = None) -> None:
        super().__init__(message)
        self.exists = exists  # whether the session still exists, when the store could tell


class SessionErased(Conflict):
    code = "session_erased"


class QuotaExceeded(AgentHostError):
    """A limit was hit. ``retry_after`` (seconds) says when trying again can succeed,
    ``None`` when it cannot be known (a request too large never will)."""

    code = "quota_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        scope: str | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope  # "user" or "tenant": whose limit it was
        self.limit = limit


class RateLimited(QuotaExceeded):
    code = "rate_limited"


class TokenBudgetExhausted(QuotaExceeded):
    code = "token_budget_exhausted"


class TooManyConcurrentTurns(QuotaExceeded):
    code = "too_many_concurrent_turns"


class TooManyLiveSessions(QuotaExceeded):
    code = "too_many_live_sessions"


class Unauthorized(AgentHostError):
    code = "unauthorized"


class Forbidden(AgentHostError):
    code = "forbidden"


class ModelError(AgentHostError):
    """A provider call failed. ``retryable``: a timeout, a lost connection, 429 or 5xx,
    which may succeed when tried again (``retry_after``: seconds the provider asked for)."""

    code = "model_error"

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class TurnTimeout(AgentHostError):
    code = "turn_timeout"


class ToolError(AgentHostError):
    code = "tool_error"


class StoreUnavailable(AgentHostError):
    code = "store_unavailable"


class ConfigError(AgentHostError):
    code = "config_error"


class MissingExtra(ConfigError, ImportError):
    """An optional feature was used without the extra that installs it; the message says
    what to install (``pip install "agenthost[postgres]"``). See :mod:`agenthost.extras`."""

    code = "missing_extra"

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(f'{feature} needs the "{extra}" extra: pip install "agenthost[{extra}]"')
        self.extra = extra


__all__ = [
    "AgentHostError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "IdempotencyKeyReused",
    "InvalidId",
    "InvalidInput",
    "MissingExtra",
    "ModelError",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "SessionBusy",
    "SessionErased",
    "StoreUnavailable",
    "TokenBudgetExhausted",
    "TooManyConcurrentTurns",
    "TooManyLiveSessions",
    "ToolError",
    "TurnTimeout",
    "Unauthorized",
]
