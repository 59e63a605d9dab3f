"""``MCPSource``: an MCP server as a tool source of an agent (configuration + its pools)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from agenthost.errors import ConfigError
from agenthost.mcp.connection import Target, describe
from agenthost.mcp.credentials import (
    CredentialProvider,
    MCPCaller,
    credential_for,
    fingerprint,
)
from agenthost.mcp.pool import Pool
from agenthost.tools import Tool, ToolContext

log = logging.getLogger("agenthost.mcp")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


@dataclass(frozen=True, slots=True, eq=False)
class MCPSource:
    """An MCP server whose tools an agent offers to the model, reached per credential.

    Give ``url`` (streamable HTTP) or ``command`` (stdio: the server runs as a
    child process). ``headers`` is the credential provider: a function of an
    :class:`~agenthost.mcp.MCPCaller` (tenant, user, server) returning the HTTP
    headers to send for that user, or for stdio the environment variables to start
    that user's server process with (one process per distinct credential). Without
    one, all users share one anonymous connection.

    Tools are offered as ``prefix`` + the server's name (default prefix
    ``"<name>_"``), only those named in ``tools`` when given. ``requires_approval``
    is ``True`` for all of them or a collection of server-side names.

    Limits: ``timeout`` per call (seconds), ``connect_timeout`` for connecting and
    listing, ``list_ttl`` for cached listings, ``max_connections`` distinct
    credentials connected at once, ``max_concurrency`` calls in flight per
    connection, ``idle_timeout`` before an unused connection is closed.
    ``protocol`` is ``"auto"`` (discover, else the initialize handshake),
    ``"legacy"`` (initialize only) or a protocol version.
    """

    name: str
    url: str | None = None
    command: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    headers: CredentialProvider | None = None
    tools: Collection[str] | None = None
    prefix: str | None = None
    requires_approval: bool | Collection[str] = False
    timeout: float = 30.0
    connect_timeout: float = 10.0
    list_ttl: float = 300.0
    max_connections: int = 32
    max_concurrency: int = 8
    idle_timeout: float = 300.0
    protocol: str = "auto"
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    target: Target = field(init=False, repr=False)
    _pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"MCP server name {name!r} must be 1-48 letters, digits, '_' or '-'")
        where = f"MCP server {name!r}"
        if (self.url is None) == (self.command is None):
            raise ConfigError(f"{where}: give exactly one of url (HTTP) or command (stdio)")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ConfigError(f"{where}: url must start with http:// or https://")
        command = tuple(self.command or ())
        if self.command is not None and (
            isinstance(self.command, str)
            or not command
            or not all(isinstance(c, str) and c for c in command)
        ):
            raise ConfigError(f"{where}: command must be a non-empty list of strings")
        for option in ("timeout", "connect_timeout", "idle_timeout"):
            if not getattr(self, option) > 0:
                raise ConfigError(f"{where}: {option} must be more than 0")
        if self.list_ttl < 0:
            raise ConfigError(f"{where}: list_ttl must not be negative")
        for option in ("max_connections", "max_concurrency"):
            if not getattr(self, option) >= 1:
                raise ConfigError(f"{where}: {option} must be at least 1")
        if self.protocol not in ("auto", "legacy", *MODERN_PROTOCOL_VERSIONS):
            raise ConfigError(
                f"{where}: protocol must be 'auto', 'legacy' or one of "
                f"{list(MODERN_PROTOCOL_VERSIONS)}"
            )
        set_ = object.__setattr__
        if self.headers is not None and not callable(self.headers):
            raise ConfigError(f"{where}: headers must be a credential provider (a function)")
        set_(self, "prefix", f"{name}_" if self.prefix is None else self.prefix)
        if self.tools is not None:
            if isinstance(self.tools, str):
                raise ConfigError(f"{where}: tools must be a list of tool names")
            set_(self, "tools", frozenset(self.tools))
        if not isinstance(self.requires_approval, bool):
            set_(self, "requires_approval", frozenset(self.requires_approval))
        set_(self, "env", dict(self.env))
        set_(
            self,
            "target",
            Target(
                name,
                self.url,
                command,
                dict(self.env),
                self.cwd,
                self.protocol,
                self.connect_timeout,
                self.max_concurrency,
            ),
        )
        set_(self, "_pools", weakref.WeakKeyDictionary())

    # -- the ToolSource protocol ------------------------------------------------------

    async def tools_for(self, context: ToolContext) -> Sequence[Tool]:
        """The server's tools for the caller; never raises (a failure gives no tools)."""
        caller = MCPCaller(context.tenant_id, context.user_id, self.name)
        pool = self.pool()
        try:
            async with asyncio.timeout(self.connect_timeout):
                credential = await credential_for(self.headers, caller)
        except Exception as exc:
            pool.counts["listing_failures"] += 1
            log.warning(
                "MCP credential provider failed",
                extra={"fields": {"server": self.name, "error": describe(exc)}},
            )
            return ()
        return await pool.tools(fingerprint(credential), credential)

    def stats(self) -> dict[str, Any]:
        """Connections, state and counters of this server (in the running event loop)."""
        pool = self._current()
        if pool is None:
            return {"transport": self.target.transport, "state": "idle", "connections": 0}
        return pool.stats()

    async def aclose(self) -> None:
        """Close every connection of the running event loop (stdio servers stop)."""
        pool = self._current()
        if pool is not None:
            await pool.aclose()

    # -- runtime ------------------------------------------------------------------------

    def pool(self) -> Pool:
        """The pool of the running event loop (each loop has its own connections)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = Pool(self)
        return pool

    async def close_idle(self) -> int:
        """Close connections idle for ``idle_timeout`` now (the pool also does it on its own)."""
        pool = self._current()
        return 0 if pool is None else await pool.close_idle()

    def _current(self) -> Pool | None:
        try:
            return self._pools.get(asyncio.get_running_loop())
        except RuntimeError:
            return None
