"""The MCP server of benchmark B8: one ``echo`` tool, built with the mcp package's ``MCPServer``.

``python mcp_echo_server.py stdio`` or ``python mcp_echo_server.py http PORT``
(streamable HTTP on 127.0.0.1): a script that needs only the ``mcp`` package.
"""

from __future__ import annotations

import asyncio
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Echo the text."""
    return text


def main() -> None:
    if sys.argv[1:2] == ["http"]:
        asyncio.run(server.run_streamable_http_async(host="127.0.0.1", port=int(sys.argv[2])))
    else:
        server.run()


if __name__ == "__main__":
    main()
