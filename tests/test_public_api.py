"""The public surface of the package is deliberate: adding or removing a name is a decision."""

from __future__ import annotations

import dataclasses

import pytest

import agenthost


def test_public_names() -> None:
    assert sorted(agenthost.__all__) == sorted(
        [
            "Agent",
            "ALL_SESSIONS",
            "AgentHostError",
            "ApprovalRequired",
            "Compaction",
            "ConfigError",
            "Conflict",
            "Delta",
            "Done",
            "ErrorEvent",
            "Event",
            "Forbidden",
            "FunctionModel",
            "Host",
            "InvalidId",
            "InvalidInput",
            "Limits",
            "LongTermMemory",
            "MemoryRecord",
            "MemoryStore",
            "Message",
            "ModelError",
            "ModelReply",
            "ModelRequest",
            "NotFound",
            "OfflineModel",
            "QuotaExceeded",
            "Quotas",
            "RateLimited",
            "RunResult",
            "SQLiteStore",
            "SessionBusy",
            "SessionKey",
            "SessionStore",
            "SessionSummary",
            "StoreUnavailable",
            "TokenBudgetExhausted",
            "TooManyConcurrentTurns",
            "TooManyLiveSessions",
            "Tool",
            "ToolCall",
            "ToolCallEvent",
            "ToolContext",
            "ToolError",
            "ToolResultEvent",
            "ToolSource",
            "Unauthorized",
            "Usage",
            "UsageMeter",
            "__version__",
            "open_store",
            "tool",
            "tool_call",
        ]
    )
    for name in agenthost.__all__:
        assert hasattr(agenthost, name), name


def test_every_error_has_a_distinct_code() -> None:
    errors = [
        getattr(agenthost, n)
        for n in agenthost.__all__
        if isinstance(getattr(agenthost, n), type)
        and issubclass(getattr(agenthost, n), agenthost.AgentHostError)
    ]
    codes = [e.code for e in errors]
    assert len(codes) == len(set(codes)) == 17


def test_agent_is_frozen_and_has_no_identity_fields() -> None:
    agent = agenthost.Agent(name="shared")
    fields = set(agent.__dataclass_fields__)
    assert not fields & {"user_id", "session_id", "tenant_id", "memory", "history"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        agent.name = "changed"  # type: ignore[misc]
