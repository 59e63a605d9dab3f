"""One MCP client session for one credential, owned by a task of its own.

The SDK's client lives in anyio task groups, which must be entered and left by
the same task; so each :class:`Connection` runs its client in an owner task and
turns call it from theirs. The owner also listens for ``tools/list_changed``
(a ``subscriptions/listen`` stream on 2026-07-28 connections, notifications on
older ones), and when that stream drops the connection counts as lost, so a
stdio server that died is restarted by the next call instead of failing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from agenthost.mcp.credentials import Credential

log = logging.getLogger("agenthost.mcp")

MAX_LIST_PAGES = 100


@dataclass(frozen=True, slots=True)
class Target:
    """Where an MCP server is and how to reach it: a URL or a command."""

    server: str
    url: str | None = None
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    protocol: str = "auto"
    connect_timeout: float = 10.0
    max_concurrency: int = 8

    @property
    def transport(self) -> str:
        return "streamable-http" if self.url else "stdio"

    @contextlib.asynccontextmanager
    async def connect(
        self, credential: Credential, on_message: Callable[[IncomingMessage], Any]
    ) -> AsyncIterator[Client]:
        """A connected client presenting ``credential`` (HTTP headers, or the process's env)."""
        options: dict[str, Any] = {
            "mode": self.protocol,
            "cache": None,  # the pool caches listings itself, per credential
            "message_handler": on_message,
            "client_info": types.Implementation(name="agenthost", version=_version()),
        }
        if self.url is not None:
            http = httpx2.AsyncClient(
                headers=dict(credential),
                timeout=httpx2.Timeout(self.connect_timeout, read=None),
                limits=httpx2.Limits(max_connections=self.max_concurrency + 1),
            )
            async with (
                http,
                Client(streamable_http_client(self.url, http_client=http), **options) as client,
            ):
                yield client
            return
        params = StdioServerParameters(
            command=self.command[0],
            args=list(self.command[1:]),
            env={**self.env, **credential},
            cwd=self.cwd,
        )
        async with Client(params, **options) as client:
            yield client


class Connection:
    """A connected MCP client for one credential, with bounded calls in flight.

    ``on_change`` is called when the server says its tools changed; ``on_lost``
    when the connection broke (the pool then drops it and reconnects on demand).
    """

    def __init__(
        self,
        target: Target,
        credential: Credential,
        *,
        on_change: Callable[[], None],
        on_lost: Callable[[Connection], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.credential = credential
        self.broken: str | None = None
        self.in_flight = 0
        self.calls = 0
        self.clock = clock
        self.last_used = clock()
        self._on_change = on_change
        self._on_lost = on_lost
        self._client: Client | None = None
        self._slots = asyncio.Semaphore(target.max_concurrency)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self._client is not None and self.broken is None and not self._stop.is_set()

    async def open(self) -> None:
        """Connect (the caller bounds the time); raises what connecting raised."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(ready), name=f"mcp:{self.target.server}")
        try:
            await ready
        except BaseException:
            await self.close()
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: the caller gets what it is raising now
            raise

    async def close(self) -> None:
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            if self._client is None:  # still connecting: nothing to close politely
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        async with self._slot() as client:
            return await client.call_tool(name, arguments)

    async def list_tools(self) -> list[types.Tool]:
        tools: list[types.Tool] = []
        async with self._slot() as client:
            cursor: str | None = None
            for _ in range(MAX_LIST_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    break
        return tools

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[Client]:
        self.in_flight += 1  # waiting for a slot counts: an idle sweep must not close it
        try:
            async with self._slots:
                client = self._client
                if client is None or self.broken is not None:
                    raise ConnectionError(self.broken or "the connection is closed")
                yield client
        finally:
            self.in_flight -= 1
            self.calls += 1
            self.last_used = self.clock()

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self.target.connect(self.credential, self._on_message) as client:
                self._client = client
                ready.set_result(None)
                listener = asyncio.create_task(self._listen(client)) if _listens(client) else None
                try:
                    await self._stop.wait()
                finally:
                    self._client = None
                    if listener is not None:
                        listener.cancel()
                        await asyncio.gather(listener, return_exceptions=True)
        except asyncio.CancelledError:
            if not ready.done():
                ready.set_exception(ConnectionError("closed while connecting"))
            raise
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            else:
                self._lost(describe(exc))
        finally:
            self._client = None

    async def _listen(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                try:
                    async for _event in subscription:
                        self._on_change()
                except Exception as exc:
                    self._lost(f"the server dropped its event stream ({describe(exc)})")
                    return
        except Exception as exc:  # not offered after all: go on without notifications
            if not self._stop.is_set():
                log.info(
                    "MCP list_changed not available",
                    extra={"fields": {"server": self.target.server, "error": describe(exc)}},
                )
            return
        self._lost("the server closed its event stream")

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._on_change()
        elif isinstance(message, Exception):
            log.warning(
                "MCP server sent something unreadable",
                extra={"fields": {"server": self.target.server, "error": describe(message)}},
            )

    def _lost(self, reason: str) -> None:
        if self._stop.is_set() or self.broken is not None:
            return
        self.broken = reason
        self._on_change()  # no replay after a reconnect: list again
        self._on_lost(self)


def _listens(client: Client) -> bool:
    tools = client.server_capabilities.tools
    return (
        client.protocol_version in MODERN_PROTOCOL_VERSIONS
        and tools is not None
        and bool(tools.list_changed)
    )


def _version() -> str:
    try:
        return importlib.metadata.version("agenthost")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def describe(exc: BaseException) -> str:
    """One line for an error, looking inside exception groups (the SDK raises them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    lines = str(exc).strip().splitlines()
    text = lines[0][:200] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
