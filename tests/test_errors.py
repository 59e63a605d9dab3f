"""``agenthost.errors``: the one hierarchy, drawn in its docstring, mapped to HTTP statuses in
``agenthost.server.errors``; each class has its own code, and the drawing stays true."""

from __future__ import annotations

import inspect

import pytest

import agenthost.errors as errors
from agenthost.server.errors import from_exception, status_for

STATUS = {
    "InvalidInput": 422,
    "InvalidId": 422,
    "IdempotencyKeyReused": 422,
    "NotFound": 404,
    "SessionBusy": 409,
    "Conflict": 409,
    "SessionErased": 409,
    "QuotaExceeded": 429,
    "RateLimited": 429,
    "TokenBudgetExhausted": 429,
    "TooManyConcurrentTurns": 429,
    "TooManyLiveSessions": 429,
    "Unauthorized": 401,
    "Forbidden": 403,
    "ModelError": 503,
    "TurnTimeout": 504,
    "ToolError": 502,
    "StoreUnavailable": 503,
    "ConfigError": 500,
    "MissingExtra": 501,
}


def classes() -> dict[str, type[errors.AgentHostError]]:
    return {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.AgentHostError)
    }


def make(cls: type[errors.AgentHostError]) -> errors.AgentHostError:
    if cls is errors.MissingExtra:
        return errors.MissingExtra("postgres", "PostgreSQL support")
    return cls("what happened")


def test_every_class_is_exported_and_drawn_in_the_docstring() -> None:
    drawn = errors.__doc__ or ""
    for name in classes():
        assert name in errors.__all__
        assert f"── {name} " in drawn or name == "AgentHostError"


@pytest.mark.parametrize("name", sorted(STATUS))
def test_each_error_has_its_status_and_code(name: str) -> None:
    error = make(classes()[name])
    assert status_for(error) == STATUS[name]
    response = from_exception(error)
    assert response.status_code == STATUS[name]
    assert response.body.startswith(b'{"error":{"code":"' + error.code.encode())


def test_the_table_covers_every_class() -> None:
    assert set(classes()) - {"AgentHostError"} == set(STATUS)


def test_codes_are_distinct_except_where_a_subclass_keeps_its_parents() -> None:
    seen: dict[str, str] = {}
    for name, cls in classes().items():
        if "code" in vars(cls):
            assert cls.code not in seen, f"{name} reuses {seen.get(cls.code)}'s code"
            seen[cls.code] = name


def test_unauthorized_asks_for_a_bearer_token() -> None:
    assert from_exception(errors.Unauthorized("no key")).headers["WWW-Authenticate"] == "Bearer"


def test_a_refused_quota_says_when_to_retry() -> None:
    refused = from_exception(errors.RateLimited("over", retry_after=2.1))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
    assert "Retry-After" not in from_exception(errors.QuotaExceeded("too long")).headers
