"""MCP servers from settings (``[agents.<name>.mcp.<server>]``, or ``[mcp.<server>]`` for
the one agent, in agenthost.toml), served over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from agenthost import ConfigError
from agenthost.bootstrap import build_agent, build_agents
from agenthost.mcp import MCPSource
from agenthost.server.app import create_app
from agenthost.settings import Settings
from support.mcp_servers import HttpMCPServer, established, stdio_command
from support.serve import API_KEYS, Server, bearer

PROVIDER = "support.mcp_servers:bearer_of"


def toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_agent_tables_hold_their_mcp_servers(tmp_path: Path) -> None:
    command = json.dumps(stdio_command(tmp_path / "log.jsonl"))
    config = toml(
        tmp_path / "agenthost.toml",
        f"""
store = "memory://"

[agents.sales]
instructions = "Sell."

[agents.sales.mcp.files]
command = {command}
env = {{ FILES_ROOT = "/srv/files", API_KEY = "secret-value" }}
tools = ["echo"]
requires_approval = ["echo"]
timeout = 5

[agents.sales.mcp.tickets]
url = "http://127.0.0.1:9/mcp"
headers_from = "{PROVIDER}"
prefix = "t_"
idle_timeout = 30

[agents.support]
instructions = "Help."
""",
    )
    settings = Settings.load(config_file=config)
    agents = build_agents(settings)
    sales, support = agents.named("sales"), agents.named("support")
    assert support.mcp == ()
    files, tickets = sales.mcp
    assert isinstance(files, MCPSource) and isinstance(tickets, MCPSource)
    assert (files.name, files.tools, files.requires_approval) == (
        "files",
        frozenset({"echo"}),
        frozenset({"echo"}),
    )
    assert (files.timeout, files.prefix, files.env["FILES_ROOT"]) == (5, "files_", "/srv/files")
    assert (tickets.url, tickets.prefix, tickets.idle_timeout) == (
        "http://127.0.0.1:9/mcp",
        "t_",
        30,
    )
    assert callable(tickets.headers)
    assert agents.tool_sources() == {"files": files, "tickets": tickets}
    masked = settings.masked()["agents"]["sales"]["mcp"]
    assert masked["files"]["env"] == {"FILES_ROOT": "***", "API_KEY": "***"}
    assert "secret-value" not in repr(settings)


def test_one_agent_takes_top_level_mcp_tables(tmp_path: Path) -> None:
    config = toml(
        tmp_path / "agenthost.toml",
        """
[mcp.tickets]
url = "http://127.0.0.1:9/mcp"
env = { TOKEN = "secret-value" }
""",
    )
    settings = Settings.load(config_file=config)
    (source,) = build_agent(settings).mcp
    assert isinstance(source, MCPSource) and source.url == "http://127.0.0.1:9/mcp"
    assert settings.masked()["mcp"]["tickets"]["env"] == {"TOKEN": "***"}

    several = toml(
        tmp_path / "several.toml", '[agents.a]\n[agents.b]\n[mcp.x]\nurl = "http://x/mcp"\n'
    )
    with pytest.raises(ConfigError, match=r"\[agents.<name>.mcp.<server>\]"):
        Settings.load(config_file=several).check()


def test_the_environment_can_name_mcp_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_MCP", json.dumps({"web": {"url": "http://127.0.0.1:9/mcp"}}))
    (source,) = build_agent(Settings.load(config_file=None)).mcp
    assert isinstance(source, MCPSource) and source.url == "http://127.0.0.1:9/mcp"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "http://x/mcp"\ncommand = ["x"]', "exactly one of url"),
        ('url = "http://x/mcp"\nheaders_from = "nowhere:thing"', "cannot import"),
        ('url = "http://x/mcp"\nheaders_from = "os:sep"', "credential provider"),
        ('url = "http://x/mcp"\nheader_from = "typo"', "header_from"),
    ],
)
def test_bad_tables_are_clear_errors(tmp_path: Path, table: str, message: str) -> None:
    config = toml(tmp_path / "agenthost.toml", f"[mcp.bad]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        build_agent(Settings.load(config_file=config))


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await app.state.host.close()


async def test_served_over_http_with_each_users_headers(
    tmp_path: Path, http_server: HttpMCPServer
) -> None:
    config = toml(
        tmp_path / "agenthost.toml",
        f"""
store = "memory://"
cleanup_interval = 3600

[agents.sales.mcp.rec]
url = "{http_server.url}"
headers_from = "{PROVIDER}"
tools = ["echo"]

[agents.support]
""",
    )
    settings = Settings.load(config_file=config)
    async with served(settings) as client:
        listed = (await client.get("/v1/agents")).json()["agents"]
        assert {a["name"]: a["mcp"] for a in listed} == {"sales": ["rec"], "support": []}
        for user in ("alice", "bob"):
            reply = await client.post(
                "/v1/agents/sales/chat",
                json={"message": '/tool rec_echo {"text": "hi"}'},
                headers={"X-User-Id": user, "X-Tenant-Id": "acme"},
            )
            assert reply.status_code == 200, reply.text
            assert (
                reply.json()["reply"]
                == f"rec_echo returned: echo hi as Bearer token-of-acme-{user}"
            )
        assert [c["token"] for c in http_server.calls()] == [
            "Bearer token-of-acme-alice",
            "Bearer token-of-acme-bob",
        ]

        stats = (await client.get("/v1/admin/stats")).json()["mcp"]["rec"]
        assert (stats["state"], stats["connections"], stats["calls"]) == ("up", 2, 2)
        metrics = (await client.get("/metrics")).text
        assert 'agenthost_mcp_connections{server="rec"} 2.0' in metrics
        assert 'agenthost_mcp_calls_total{server="rec"} 2.0' in metrics
        assert 'agenthost_mcp_up{server="rec"} 1.0' in metrics

        # the MCP server goes away: readiness does not depend on it, chat goes on
        http_server.kill()
        assert (await client.get("/readyz")).status_code == 200
        reply = await client.post(
            "/v1/agents/sales/chat",
            json={"message": '/tool rec_echo {"text": "again"}'},
            headers={"X-User-Id": "alice", "X-Tenant-Id": "acme"},
        )
        assert reply.status_code == 200
        assert reply.json()["reply"].startswith("rec_echo returned: error: ToolError: ")
        metrics = (await client.get("/metrics")).text
        assert 'agenthost_mcp_call_errors_total{server="rec"} 1.0' in metrics


def test_agenthost_serve_uses_each_callers_credentials(
    tmp_path: Path, http_server: HttpMCPServer
) -> None:
    """The README's deployment: a real server process, API keys, an [mcp] table."""
    config = toml(
        tmp_path / "agenthost.toml",
        f"""
[mcp.rec]
url = "{http_server.url}"
headers_from = "{PROVIDER}"
""",
    )
    flags = ["--store", f"sqlite:///{tmp_path / 'a.db'}", "--auth", "api-keys"]
    server = Server(
        [*flags, "--config", str(config)],
        tmp_path / "server.log",
        {"AGENTHOST_API_KEYS": API_KEYS},
    )
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        for user in ("alice", "bob"):
            reply = client.post(
                "/v1/chat", json={"message": '/tool rec_echo {"text": "hi"}'}, headers=bearer(user)
            )
            assert reply.status_code == 200, reply.text
            expected = f"echo hi as Bearer token-of-acme-{user}"
            assert reply.json()["reply"] == f"rec_echo returned: {expected}"
        assert established(http_server.port) > 0
    # SIGTERM: the host closed its MCP connections on the way out
    assert established(http_server.port) == 0
    assert [c["token"] for c in http_server.calls()] == [
        "Bearer token-of-acme-alice",
        "Bearer token-of-acme-bob",
    ]
