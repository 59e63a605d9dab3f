"""MCP's shapes to agenthost's: a server's tool listing to tools, a tool result to text."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import mcp_types as types
import orjson

from agenthost.errors import ToolError
from agenthost.tools import Tool, ToolContext, raw_tool

log = logging.getLogger("agenthost.mcp")

MAX_RESULT_CHARS = 100_000
"""A result longer than this reaches the model cut, with a note saying so."""

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64  # what OpenAI-style providers accept for a function name

CallFunction = Callable[[str, dict[str, Any]], Awaitable[str]]
"""``call(remote_tool_name, arguments)``: the pool's call for one credential."""


def tool_name(prefix: str, remote: str) -> str | None:
    """The name the model sees: prefixed, with characters providers refuse replaced."""
    name = prefix + _NOT_IN_NAME.sub("_", remote)
    return name if len(name) <= _MAX_NAME else None


def to_tools(
    server: str,
    listing: Sequence[types.Tool],
    *,
    prefix: str,
    allowed: Collection[str] | None,
    approval: bool | Collection[str],
    call: CallFunction,
) -> tuple[Tool, ...]:
    """The listed tools the agent may use (``allowed``: server-side names), as agenthost tools."""
    out: list[Tool] = []
    seen: set[str] = set()
    for remote in listing:
        if allowed is not None and remote.name not in allowed:
            continue
        name = tool_name(prefix, remote.name)
        if name is None or name in seen:
            log.warning(
                "MCP tool left out: its name is too long or clashes after cleaning",
                extra={"fields": {"server": server, "tool": remote.name}},
            )
            continue
        seen.add(name)
        needs_approval = approval if isinstance(approval, bool) else remote.name in approval
        out.append(
            raw_tool(
                name,
                remote.description or remote.title or remote.name,
                dict(remote.input_schema) or {"type": "object", "properties": {}},
                _bind(call, remote.name),
                requires_approval=needs_approval,
            )
        )
    return tuple(out)


def _bind(
    call: CallFunction, remote: str
) -> Callable[[dict[str, Any], ToolContext], Awaitable[str]]:
    async def run(arguments: dict[str, Any], context: ToolContext) -> str:
        return await call(remote, arguments)

    return run


def result_text(server: str, tool: str, result: types.CallToolResult) -> str:
    """What the model reads of a tool result; a result flagged as an error raises ``ToolError``."""
    parts = [_block_text(block) for block in result.content]
    text = "\n".join(p for p in parts if p)
    if not text and result.structured_content is not None:
        text = orjson.dumps(result.structured_content, default=str).decode()
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[cut: the result had {len(text)} characters]"
    if result.is_error:
        raise ToolError(text or f"MCP server {server!r}: {tool} reported an error")
    return text


def _block_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        return f"[resource {resource.uri} ({resource.mime_type or 'binary'})]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link {block.uri}]"
    if isinstance(block, types.ImageContent | types.AudioContent):
        return f"[{block.type}: {block.mime_type}]"
    return f"[{getattr(block, 'type', 'content')}]"
