"""agenthost: one agent definition serving many users with isolated, persistent sessions."""

from agenthost.agent import Agent
from agenthost.compaction import Compaction
from agenthost.errors import (
    AgentHostError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidId,
    InvalidInput,
    ModelError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    SessionBusy,
    StoreUnavailable,
    TokenBudgetExhausted,
    ToolError,
    TooManyConcurrentTurns,
    TooManyLiveSessions,
    Unauthorized,
)
from agenthost.events import (
    ApprovalRequired,
    Delta,
    Done,
    ErrorEvent,
    Event,
    RunResult,
    ToolCallEvent,
    ToolResultEvent,
)
from agenthost.host import ALL_SESSIONS, Host
from agenthost.keys import SessionKey
from agenthost.memory import LongTermMemory
from agenthost.messages import Message, ToolCall, Usage
from agenthost.models import FunctionModel, ModelReply, ModelRequest, OfflineModel, tool_call
from agenthost.quotas import Limits, Quotas
from agenthost.stores import MemoryStore, SessionStore, SQLiteStore, open_store
from agenthost.stores.base import MemoryRecord, SessionSummary
from agenthost.tools import Tool, ToolContext, ToolSource, tool
from agenthost.usage import UsageMeter

__version__ = "0.1.0"

__all__ = [
    "ALL_SESSIONS",
    "Agent",
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
