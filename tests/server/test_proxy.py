"""Behind a real nginx that ends TLS and serves the app under ``/agents``, with the README's
own ``location`` snippet: the console, ``/docs``, the A2A card, streaming, and which proxy
may set the client address and scheme. (Last, without nginx: the prefix in-process and the
settings.)

Two ``agenthost serve`` processes sit behind it: one trusts nginx
(``--forwarded-allow-ips 127.0.0.1``), one trusts no proxy. The test client connects
from 127.0.0.2, so the address each server logs tells whose word it took.
"""

from __future__ import annotations

import argparse
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from serverkit import log_lines, make_app, parse_sse

from agenthost.commands import serve
from agenthost.errors import ConfigError
from agenthost.settings import Settings
from support.agents import AGENT
from support.nginx import PREFIX, Nginx, Site, nginx_binary
from support.serve import Server, free_port, sqlite_server, uid

CLIENT_ADDRESS = "127.0.0.2"


@dataclass
class Proxied:
    """nginx in front of two agenthost servers: ``trusted`` believes it, ``untrusted`` not."""

    trusted: Server
    untrusted: Server
    trusted_url: str  # https://127.0.0.1:PORT/agents, through nginx
    untrusted_url: str
    tls: ssl.SSLContext

    def client(self, *, local_address: str = CLIENT_ADDRESS) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.tls, local_address=local_address)
        return httpx.Client(transport=transport, timeout=30.0)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    nginx_binary()  # or skip
    tmp = tmp_path_factory.mktemp("nginx")
    common = ["--root-path", PREFIX, "--log-level", "debug"]
    trusting = sqlite_server(tmp / "trusted", AGENT, *common, "--forwarded-allow-ips", "127.0.0.1")
    distrusting = sqlite_server(tmp / "untrusted", AGENT, *common)
    for server in (trusting, distrusting):
        server.log_path.parent.mkdir()
    with trusting as trusted, distrusting as untrusted:
        sites = [Site(free_port(), trusted.port), Site(free_port(), untrusted.port)]
        with Nginx(tmp, sites) as nginx:
            yield Proxied(trusted, untrusted, sites[0].url, sites[1].url, nginx.tls)


def test_the_agent_card_advertises_the_public_https_url(proxied: Proxied) -> None:
    with proxied.client() as http:
        card = http.get(f"{proxied.trusted_url}/.well-known/agent-card.json").json()
        ignored = http.get(f"{proxied.untrusted_url}/.well-known/agent-card.json").json()
    urls = {i["url"] for i in card["supportedInterfaces"]}
    assert urls == {f"{proxied.trusted_url}/a2a"}
    assert urls.pop().startswith("https://")
    # The server that trusts no proxy does not take nginx's word for https.
    public = urlsplit(proxied.untrusted_url)
    assert {i["url"] for i in ignored["supportedInterfaces"]} == {
        f"http://{public.netloc}{PREFIX}/a2a"
    }


def test_docs_under_the_prefix(proxied: Proxied) -> None:
    with proxied.client() as http:
        docs = http.get(f"{proxied.trusted_url}/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        assert f"'{PREFIX}/openapi.json'" in docs.text
        spec = http.get(f"{proxied.trusted_url}/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["servers"] == [{"url": PREFIX}]
    assert "/v1/chat" in spec.json()["paths"]


SITE_ABSOLUTE = re.compile(r"""["'`(]/(v1|docs|console|openapi|healthz|dashboard)\b""")


def test_the_console_under_the_prefix(proxied: Proxied) -> None:
    """The pages and everything they load (scripts and the modules they import) stay under
    the prefix. (The console working in a browser under the prefix:
    tests/browser/test_console_prefix.py.)"""
    base = f"{proxied.trusted_url}/"
    with proxied.client() as http:
        bare = http.get(proxied.trusted_url, follow_redirects=True)  # nginx adds the slash
        assert bare.status_code == 200 and bare.url == httpx.URL(base)
        queue, seen = [base, urljoin(base, "dashboard")], set()
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            response = http.get(url)
            assert response.status_code == 200, url
            assert response.url.path.startswith(f"{PREFIX}/"), url
            kind = response.headers["content-type"]
            if "html" in kind:
                references = re.findall(r"""(?:src|href)="([^"#:]+)\"""", response.text)
            elif "javascript" in kind:
                references = re.findall(r"""from "(\.[^"]+)\"""", response.text)
            else:
                continue
            assert not SITE_ABSOLUTE.search(response.text), url
            queue += [urljoin(url, reference) for reference in references]
    assert any(url.endswith("/common.js") for url in seen)  # imported modules were checked


def test_a_turn_through_the_proxy(proxied: Proxied) -> None:
    user, session = uid("px"), uid("s")
    base = proxied.trusted_url
    body = {"message": "My name is Pia", "user_id": user, "session_id": session}
    with proxied.client() as http:
        reply = http.post(f"{base}/v1/chat", json=body, headers={"X-Request-Id": "via-nginx"})
        assert reply.status_code == 200 and reply.json()["reply"] == "Nice to meet you, Pia!"
        assert reply.headers["X-Request-Id"] == "via-nginx"
        ask = {**body, "message": "What is my name?", "stream": True}
        with http.stream("POST", f"{base}/v1/chat", json=ask) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            assert streamed.headers["X-Request-Id"]
            events = parse_sse(streamed.read().decode())
        missing = http.get(f"{base}/v1/sessions/nope", headers={"X-User-Id": user})
    assert events[-1][0] == "done"
    assert "".join(d.get("text", "") for kind, d in events if kind == "delta") == (
        "Your name is Pia."
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["request_id"] == missing.headers["X-Request-Id"]


def access_line(server: Server, request_id: str) -> dict[str, object]:
    [line] = [
        line
        for line in log_lines(server, request_id)
        if line.get("request_id") == request_id and line["message"] == "request"
    ]
    return line


def test_client_address_comes_from_a_trusted_proxy_only(proxied: Proxied) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    ids = {name: uid(name) for name in ("trusted", "untrusted", "direct")}
    with proxied.client() as http:
        for name, url in (("trusted", proxied.trusted_url), ("untrusted", proxied.untrusted_url)):
            http.get(f"{url}/healthz", headers={**spoofed, "X-Request-Id": ids[name]})
    # The trusting server logs the client nginx saw (not what the client claimed); the other
    # logs nginx itself.
    assert access_line(proxied.trusted, ids["trusted"])["client"] == CLIENT_ADDRESS
    assert access_line(proxied.untrusted, ids["untrusted"])["client"] == "127.0.0.1"
    # Straight to the server that trusts no proxy, the same claims change nothing.
    with proxied.client(local_address="127.0.0.1") as http:
        direct = proxied.untrusted.url
        card = http.get(f"{direct}/.well-known/agent-card.json", headers=spoofed).json()
        http.get(f"{direct}/healthz", headers={**spoofed, "X-Request-Id": ids["direct"]})
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{direct}{PREFIX}/a2a"}
    assert access_line(proxied.untrusted, ids["direct"])["client"] == "127.0.0.1"


# -- without nginx: the prefix in-process, and the settings ---------------------------


@pytest.fixture
async def prefixed() -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(
        Settings.load({"store": "memory://", "model": "offline", "root_path": "/agents/"})
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await app.state.host.close()


async def test_routes_match_whether_the_proxy_strips_the_prefix_or_not(
    prefixed: httpx.AsyncClient,
) -> None:
    for path in ("", PREFIX):  # stripped by the proxy, or passed on
        chat = await prefixed.post(f"{path}/v1/chat", json={"message": "My name is Ro"})
        assert chat.status_code == 200 and chat.json()["reply"] == "Nice to meet you, Ro!"
        card = (await prefixed.get(f"{path}/.well-known/agent-card.json")).json()
        assert {i["url"] for i in card["supportedInterfaces"]} == {"http://test/agents/a2a"}
        assert f"'{PREFIX}/openapi.json'" in (await prefixed.get(f"{path}/docs")).text
    # a path that only begins like the prefix is not under it
    assert (await prefixed.get("/agentsx/healthz")).status_code == 404


def test_proxy_settings_from_flags_environment_and_toml(
    bare_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (Settings.load().root_path, Settings.load().forwarded_allow_ips) == ("", [])
    Path("agenthost.toml").write_text(
        'root_path = "/from-toml"\nforwarded_allow_ips = ["10.0.0.1"]\n'
    )
    assert Settings.load().root_path == "/from-toml"
    monkeypatch.setenv("AGENTHOST_FORWARDED_ALLOW_IPS", "127.0.0.1, 10.0.0.0/8")
    assert Settings.load().forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/8"]
    parser = argparse.ArgumentParser()
    serve.configure(parser)
    args = parser.parse_args(
        ["--root-path", "/agents/", "--forwarded-allow-ips", "*", "--cors-origins", "https://a.b"]
    )
    settings = Settings.load(serve.overrides(args))
    assert settings.root_path == "/agents"
    assert settings.forwarded_allow_ips == ["*"]
    assert settings.cors_origins == ["https://a.b"]


@pytest.mark.parametrize(
    "values",
    [
        {"root_path": "agents"},
        {"root_path": "/a b"},
        {"root_path": "/a?b"},
        {"forwarded_allow_ips": "nginx"},
        {"forwarded_allow_ips": "10.0.0.0/33"},
    ],
)
def test_bad_proxy_settings_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(values))):
        Settings.load({"store": "memory://", **values})
