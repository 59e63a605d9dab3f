"""MCP tool servers as tool sources of an agent, reached with each user's own credentials.

::

    from agenthost import Agent
    from agenthost.mcp import MCPCaller, MCPSource

    def ticket_headers(caller: MCPCaller) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_of(caller.tenant_id, caller.user_id)}"}

    agent = Agent(
        name="support",
        mcp=[
            MCPSource("tickets", url="https://tickets.example/mcp", headers=ticket_headers),
            MCPSource("files", command=["python", "-m", "files_server"], tools=["read"]),
        ],
    )

Each turn asks every source for the caller's tools (cached per credential), so
the model sees them like ``@tool`` functions (``tickets_search``, ``files_read``),
with the same events and approvals. Modules: :mod:`~agenthost.mcp.source`
(configuration), :mod:`~agenthost.mcp.pool` (connections per credential),
:mod:`~agenthost.mcp.connection` (one client session), :mod:`~agenthost.mcp.convert`
(listings and results), :mod:`~agenthost.mcp.credentials` (providers).
Needs the ``mcp`` package: ``pip install "agenthost[mcp]"``.
"""

from __future__ import annotations

try:
    import mcp as _sdk  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        'MCP tool servers need the mcp package: pip install "agenthost[mcp]"'
    ) from None

from agenthost.mcp.credentials import CredentialProvider, MCPCaller
from agenthost.mcp.source import MCPSource

__all__ = [
    "CredentialProvider",
    "MCPCaller",
    "MCPSource",
]
