"""A real MCP server for the tests, built with the mcp package's own ``MCPServer``.

Run as ``python mcp_server.py stdio LOG`` (the credential arrives in the
``MCP_TOKEN`` environment variable) or ``python mcp_server.py http PORT LOG``
(streamable HTTP on 127.0.0.1; the credential is the ``Authorization`` header).
Every call is appended to LOG as one JSON line: the tool, its arguments, the
credential this server saw, this process's pid, the TCP peer port (HTTP) and how
many calls of that credential were in flight when it started: the server's own
record of who asked for what.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import PlainTextResponse

server = MCPServer("recorder", log_level="WARNING")
LOG = ""
in_flight: Counter[str] = Counter()


def credential(ctx: Context) -> str:
    headers = ctx.headers
    if headers is not None:
        return headers.get("authorization", "")
    return os.environ.get("MCP_TOKEN", "")


def record(ctx: Context, tool: str, **fields: Any) -> None:
    request = ctx.request_context.request
    client = getattr(request, "client", None)
    line = {
        "tool": tool,
        "token": credential(ctx),
        "pid": os.getpid(),
        "peer": client.port if client is not None else None,
        **fields,
    }
    with open(LOG, "a") as log:  # one short append per call: lines never interleave
        log.write(json.dumps(line) + "\n")


@server.tool()
async def echo(text: str, ctx: Context, delay: float = 0.0) -> str:
    """Echo the text, with the credential this server saw."""
    token = credential(ctx)
    in_flight[token] += 1
    try:
        record(ctx, "echo", text=text, in_flight=in_flight[token])
        if delay:
            await asyncio.sleep(delay)
        return f"echo {text} as {token or 'nobody'}"
    finally:
        in_flight[token] -= 1


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Take a while to answer."""
    record(ctx, "slow", seconds=seconds)
    await asyncio.sleep(seconds)
    return "slow done"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, saying why."""
    raise ToolError(reason)


@server.tool()
def garble() -> str:
    """Write a line that is not JSON-RPC to stdout (stdio), then answer normally."""
    os.write(1, b"this is not json\n")
    return "garbled"


@server.tool()
async def grow(ctx: Context, notify: bool = True) -> str:
    """Add a tool named 'extra' (and tell clients the tool list changed, unless asked not to)."""

    def extra() -> str:
        return "extra tool"

    server.add_tool(extra, name="extra", description="Added at run time.")
    if notify:
        await ctx.notify_tools_changed()  # to subscriptions/listen streams (2026-07-28)
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:  # older sessions: a notification
            await ctx.request_context.session.send_tool_list_changed()
    return "grown"


@server.custom_route("/garbage", methods=["GET", "POST", "DELETE"])
async def garbage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("}{ not an MCP server", media_type="application/json")


def main() -> None:
    global LOG
    mode = sys.argv[1]
    if mode == "stdio":
        LOG = sys.argv[2]
        server.run()
    else:
        port, LOG = int(sys.argv[2]), sys.argv[3]
        asyncio.run(server.run_streamable_http_async(host="127.0.0.1", port=port))


if __name__ == "__main__":
    main()
