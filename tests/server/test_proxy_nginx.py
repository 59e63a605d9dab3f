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
import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from serverkit import log_lines, make_app, parse_sse

from agenthost.commands import serve
from agenthost.errors import ConfigError
from agenthost.settings import Settings
from support.agents import AGENT
from support.serve import Server, free_port, sqlite_server, uid

README = Path(__file__).parents[2] / "README.md"
PREFIX = "/agents"
CLIENT_ADDRESS = "127.0.0.2"
READY_TIMEOUT = 30.0


def readme_snippet() -> str:
    """The ``nginx`` block of the README's "Behind a reverse proxy" section."""
    section = README.read_text().split("## Behind a reverse proxy", 1)[1]
    match = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    assert match, "README: no nginx snippet under 'Behind a reverse proxy'"
    return match.group(1)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_config(directory: Path, cert: Path, key: Path, upstreams: dict[int, int]) -> Path:
    """One TLS server block per ``{nginx port: agenthost port}``, each with the README's
    location, its upstream port put in place of the README's 8000."""
    snippet = readme_snippet()
    assert "http://127.0.0.1:8000/" in snippet
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {snippet.replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")}
    }}"""
        for port, upstream in upstreams.items()
    )
    temp = directory / "temp"
    temp.mkdir()
    config = f"""
daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log {directory / "access.log"};
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    {servers}
}}
"""
    path = directory / "nginx.conf"
    path.write_text(config)
    return path


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


def wait_until_served(url: str, tls: ssl.SSLContext, nginx: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            raise RuntimeError(f"nginx exited with {nginx.returncode}")
        try:
            if httpx.get(url, verify=tls, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling for readiness, not synchronisation
    raise RuntimeError(f"nginx did not serve {url} in {READY_TIMEOUT}s")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("Debian nginx is not installed (apt-get install nginx; .ci/run does)")
    tmp = tmp_path_factory.mktemp("nginx")
    common = ["--root-path", PREFIX, "--log-level", "debug"]
    trusting = sqlite_server(tmp / "trusted", AGENT, *common, "--forwarded-allow-ips", "127.0.0.1")
    distrusting = sqlite_server(tmp / "untrusted", AGENT, *common)
    for server in (trusting, distrusting):
        server.log_path.parent.mkdir()
    cert, key = self_signed(tmp)
    tls = ssl.create_default_context(cafile=str(cert))
    ports = (free_port(), free_port())
    with trusting as trusted, distrusting as untrusted:
        config = nginx_config(tmp, cert, key, {ports[0]: trusted.port, ports[1]: untrusted.port})
        process = subprocess.Popen(
            [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            urls = [f"https://127.0.0.1:{port}{PREFIX}" for port in ports]
            for url in urls:
                wait_until_served(url + "/healthz", tls, process)
            yield Proxied(trusted, untrusted, urls[0], urls[1], tls)
        finally:
            process.terminate()
            process.wait(timeout=15)


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


def test_the_console_under_the_prefix(proxied: Proxied) -> None:
    with proxied.client() as http:
        bare = http.get(proxied.trusted_url, follow_redirects=True)  # nginx adds the slash
        page = http.get(f"{proxied.trusted_url}/")
        assert bare.status_code == page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert bare.url == httpx.URL(f"{proxied.trusted_url}/")
        # Every URL the page names stays under the prefix: nothing is site-absolute.
        assert not re.search(r"""["'`(]/(v1|docs|console|openapi)""", page.text)
        references = re.findall(r"""(?:src|href)="([^"#:]+)\"""", page.text)
        for reference in references:
            asset = http.get(urljoin(f"{proxied.trusted_url}/", reference))
            assert asset.status_code == 200, reference
            assert asset.url.path.startswith(f"{PREFIX}/"), reference


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
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTHOST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
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
