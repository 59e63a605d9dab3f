"""The connections of one MCP server (in one event loop): one per distinct credential.

- **Never shared across credentials**: a connection is keyed by the fingerprint
  of the credential it presents, so a request made for one user cannot carry
  another user's token. Callers presenting the same credential share it.
- **Bounded**: at most ``max_connections``; a new credential evicts the least
  recently used idle one, or waits (within its call's time) for one to go idle.
  Each connection has at most ``max_concurrency`` calls in flight.
- **Reused, closed when idle, re-established**: connections live across turns,
  are closed after ``idle_timeout`` without calls, and one that broke (a stdio
  process that died, a dropped HTTP stream) is replaced on the next call. A
  server that cannot be reached is retried after a growing pause (1 s to 30 s)
  so a dead server costs calls nothing but a fast error.
- **Listings cached** per credential for ``list_ttl`` (and dropped when the
  server says its tools changed); when listing fails the last listing is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2
import pydantic
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from agenthost.errors import ToolError
from agenthost.mcp.connection import Connection, describe
from agenthost.mcp.convert import result_text, to_tools
from agenthost.mcp.credentials import Credential
from agenthost.tools import Tool

if TYPE_CHECKING:
    from agenthost.mcp.source import MCPSource

log = logging.getLogger("agenthost.mcp")

T = TypeVar("T")
MAX_BACKOFF = 30.0


@dataclass(slots=True)
class Listing:
    tools: tuple[Tool, ...]
    fetched_at: float
    generation: int


class Pool:
    def __init__(self, source: MCPSource) -> None:
        self.source = source
        self.clock = source.clock
        self.connections: OrderedDict[str, Connection] = OrderedDict()  # least recent first
        self.listings: OrderedDict[str, Listing] = OrderedDict()
        self.generation = 0  # bumped when the server's tools changed
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.down = False  # the last connect attempt failed
        self.failing = False  # ... because the server is unreachable: retry after a pause
        self.last_error: str | None = None
        self.retry_at = 0.0
        self._backoff = 0.0
        self._flights: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._room = asyncio.Event()
        self._closers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # -- what the source asks -------------------------------------------------------

    async def tools(self, key: str, credential: Credential) -> tuple[Tool, ...]:
        """The tools for one credential: cached, else listed (the last listing if that fails)."""
        listing = self.listings.get(key)
        if listing is not None and self._fresh(listing):
            self.listings.move_to_end(key)
            return listing.tools
        try:
            async with asyncio.timeout(self.source.connect_timeout):
                return await self._once(("list", key), lambda: self._list(key, credential))
        except Exception as exc:
            if isinstance(exc, ToolError):
                reason = exc.message
            elif isinstance(exc, TimeoutError):
                reason = f"no tool listing in {self.source.connect_timeout:g}s"
            else:
                reason = describe(exc)
            self.counts["listing_failures"] += 1
            self._note(reason)
            log.warning(
                "MCP tools not listed",
                extra={"fields": {"server": self.source.name, "error": reason}},
            )
            return listing.tools if listing is not None else ()

    async def call(
        self, key: str, credential: Credential, tool: str, arguments: dict[str, Any]
    ) -> str:
        """Call ``tool``; every failure is a ``ToolError`` whose message the model reads."""
        name = self.source.name
        self.counts["calls"] += 1
        connection: Connection | None = None
        try:
            async with asyncio.timeout(self.source.timeout):
                connection = await self.connection(key, credential)
                result = await connection.call_tool(tool, arguments)
        except TimeoutError:
            self.counts["timeouts"] += 1
            raise ToolError(
                f"MCP server {name!r}: {tool} timed out after {self.source.timeout:g}s"
            ) from None
        except ToolError:
            self.counts["call_errors"] += 1
            raise
        except MCPError as exc:
            self.counts["call_errors"] += 1
            if exc.code == CONNECTION_CLOSED and connection is not None:
                self.lost(connection, exc.message)
                raise ToolError(
                    f"MCP server {name!r}: the connection closed during {tool}; "
                    "it is re-established on the next call"
                ) from None
            raise ToolError(f"MCP server {name!r} refused {tool}: {exc.message}") from None
        except pydantic.ValidationError:
            self.counts["call_errors"] += 1
            raise ToolError(f"MCP server {name!r} answered {tool} with an invalid result") from None
        except Exception as exc:
            self.counts["call_errors"] += 1
            if connection is not None:
                self.lost(connection, describe(exc))
            raise ToolError(f"MCP server {name!r}: {tool} failed: {describe(exc)}") from None
        finally:
            self._room.set()
        try:
            return result_text(name, tool, result)
        except ToolError:
            self.counts["tool_errors"] += 1
            raise

    # -- connections ----------------------------------------------------------------

    async def connection(self, key: str, credential: Credential) -> Connection:
        current = self.connections.get(key)
        if current is not None:
            if current.usable:
                self.connections.move_to_end(key)
                return current
            self.lost(current, current.broken or "closed")
        connection: Connection = await self._once(
            ("open", key), lambda: self._open(key, credential)
        )
        return connection

    async def _open(self, key: str, credential: Credential) -> Connection:
        name = self.source.name
        now = self.clock()
        if self.failing and now < self.retry_at:
            raise ToolError(
                f"MCP server {name!r} is unavailable ({self.last_error}); "
                f"next attempt in {self.retry_at - now:.1f}s"
            )
        await self._make_room()
        connection = Connection(
            self.source.target,
            credential,
            on_change=self.tools_changed,
            on_lost=lambda c: self.lost(c, c.broken or "lost"),
            clock=self.clock,
        )
        try:
            async with asyncio.timeout(self.source.connect_timeout):
                await connection.open()
        except Exception as exc:
            reason = (
                f"no answer in {self.source.connect_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else describe(exc)
            )
            self.counts["connect_failures"] += 1
            self.down = True
            self._note(reason, unreachable=self._unreachable(exc))
            raise ToolError(f"cannot connect to MCP server {name!r}: {reason}") from None
        self.counts["connects"] += 1
        self.down = self.failing = False
        self._backoff = 0.0
        self.connections[key] = connection
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"mcp-sweep:{name}")
        return connection

    def lost(self, connection: Connection, reason: str) -> None:
        """A connection broke: drop it (the next call reconnects)."""
        if self._retire(connection, "lost"):
            self._note(reason)
            log.warning(
                "MCP connection lost",
                extra={"fields": {"server": self.source.name, "error": reason}},
            )

    def tools_changed(self) -> None:
        self.generation += 1
        self.counts["list_changed"] += 1

    async def close_idle(self) -> int:
        """Close connections idle for ``idle_timeout``; return how many."""
        now = self.clock()
        idle = [
            c
            for c in self.connections.values()
            if c.in_flight == 0 and now - c.last_used >= self.source.idle_timeout
        ]
        for connection in idle:
            self._retire(connection, "closed_idle")
        await self._closed()
        return len(idle)

    async def aclose(self) -> None:
        pending = list(self._flights.values())  # connects and listings under way
        if self._sweeper is not None:
            pending.append(self._sweeper)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._sweeper = None
        for connection in list(self.connections.values()):
            self._retire(connection, "closed")
        self.listings.clear()
        await self._closed()

    # -- internals ------------------------------------------------------------------

    def _fresh(self, listing: Listing) -> bool:
        return (
            listing.generation == self.generation
            and self.clock() - listing.fetched_at < self.source.list_ttl
        )

    async def _list(self, key: str, credential: Credential) -> tuple[Tool, ...]:
        generation = self.generation
        connection = await self.connection(key, credential)
        try:
            async with asyncio.timeout(self.source.timeout):
                listed = await connection.list_tools()
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self.lost(connection, exc.message)
            raise ToolError(exc.message) from None
        except (ConnectionError, httpx2.TransportError) as exc:
            self.lost(connection, describe(exc))
            raise
        finally:
            self._room.set()

        async def call(tool: str, arguments: dict[str, Any]) -> str:
            return await self.call(key, credential, tool, arguments)

        source = self.source
        tools = to_tools(
            source.name,
            listed,
            prefix=source.prefix or "",
            allowed=source.tools,
            approval=source.requires_approval,
            call=call,
        )
        self.listings[key] = Listing(tools, self.clock(), generation)
        while len(self.listings) > 4 * source.max_connections:
            self.listings.popitem(last=False)
        return tools

    async def _once(self, flight: tuple[str, str], make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make`` once for all concurrent callers asking the same (one connect per key).

        It runs as a task of its own, so a caller that gives up does not fail the others.
        """
        task = self._flights.get(flight)
        if task is None:
            task = asyncio.create_task(make())
            self._flights[flight] = task

            def done(finished: asyncio.Task[Any]) -> None:
                if self._flights.get(flight) is finished:
                    del self._flights[flight]
                if not finished.cancelled():
                    finished.exception()  # retrieved, even when every caller gave up

            task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _make_room(self) -> None:
        limit = self.source.max_connections
        while len(self.connections) >= limit:
            idle = next((c for c in self.connections.values() if c.in_flight == 0), None)
            if idle is not None:
                self._retire(idle, "evicted")
                continue
            self._room.clear()
            await self._room.wait()

    def _retire(self, connection: Connection, why: str) -> bool:
        """Take ``connection`` out of the pool and close it in the background."""
        key = next((k for k, c in self.connections.items() if c is connection), None)
        if key is None:
            return False
        del self.connections[key]
        self.counts[why] += 1
        task = asyncio.create_task(connection.close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        self._room.set()
        return True

    async def _closed(self) -> None:
        while self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(self.source.idle_timeout / 2, 30.0))
        try:
            while self.connections:
                await asyncio.sleep(interval)
                await self.close_idle()
        finally:
            self._sweeper = None

    def _note(self, reason: str, *, unreachable: bool = False) -> None:
        self.last_error = reason
        if unreachable:
            self.failing = True
            self._backoff = min(max(self._backoff * 2, 1.0), MAX_BACKOFF)
            self.retry_at = self.clock() + self._backoff

    def _unreachable(self, exc: BaseException) -> bool:
        """Whether a connect failure says the server is down (for every credential)."""
        if self.source.target.url is None:
            return True  # a stdio server that does not start fails for everyone
        pending: list[BaseException] = [exc]
        while pending:
            item = pending.pop()
            if isinstance(item, BaseExceptionGroup):
                pending.extend(item.exceptions)
            elif isinstance(
                item, OSError | TimeoutError | httpx2.ConnectError | httpx2.TimeoutException
            ):
                return True
        return False

    def stats(self) -> dict[str, Any]:
        now = self.clock()
        connections = list(self.connections.values())
        state = "down" if self.down else ("up" if connections else "idle")
        return {
            "transport": self.source.target.transport,
            "state": state,
            "connections": len(connections),
            "max_connections": self.source.max_connections,
            "in_flight": sum(c.in_flight for c in connections),
            **self.counts,
            "last_error": self.last_error,
            "retry_in_seconds": round(self.retry_at - now, 3) if self.failing else None,
        }


COUNTERS = (
    "connects",
    "connect_failures",
    "lost",
    "closed_idle",
    "evicted",
    "closed",
    "calls",
    "call_errors",
    "tool_errors",
    "timeouts",
    "listing_failures",
    "list_changed",
)
