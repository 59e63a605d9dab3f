"""Debian's nginx in front of ``agenthost serve``, configured with what the project ships.

Two configurations, one machinery:

- :class:`Nginx`, the README's own snippet: :func:`readme_snippet` is the ``location``
  block of the README's "Behind a reverse proxy" section; it runs one nginx (no daemon,
  one process, everything in a temporary folder) with a ``server`` block per
  :class:`Site`, each holding that snippet with the site's upstream port in place of the
  README's 8000. A site may end TLS with a self-signed certificate (:func:`self_signed`).
- :class:`LoadBalancer`, the site of ``compose.yaml``: :func:`render` fills
  ``deploy/nginx/templates/agenthost.conf.template`` the way the official nginx image's
  entrypoint does (``${NAME}`` from a mapping; nginx's own ``$variables`` left alone), in
  front of two upstreams, with an access log that names the upstream(s) of each request.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.serve import free_port

README = Path(__file__).parents[2] / "README.md"
PREFIX = "/agents"  # the prefix of the README's snippet
READY_TIMEOUT = 30.0
TEMPLATE = Path(__file__).parents[2] / "deploy" / "nginx" / "templates" / "agenthost.conf.template"
ACCESS_FORMAT = "$request_method $request_uri $status upstream=[$upstream_addr] [$upstream_status]"


def nginx_binary() -> str:
    """nginx's path; skips the test (fails it under CI) when nginx is not installed."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if path is None:
        reason = "Debian nginx is not installed (apt-get install -y nginx; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def render(template: str, values: Mapping[str, str]) -> str:
    """``${NAME}`` -> ``values[NAME]``, as envsubst with only those names defined."""
    missing = set(re.findall(r"\$\{(\w+)\}", template)) - set(values)
    if missing:
        raise KeyError(f"no value for {sorted(missing)}")
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)


def readme_snippet() -> str:
    section = README.read_text().split("## Behind a reverse proxy", 1)[1]
    match = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    assert match, "README: no nginx snippet under 'Behind a reverse proxy'"
    snippet = match.group(1)
    assert f"location {PREFIX}/" in snippet and "http://127.0.0.1:8000/" in snippet
    return snippet


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
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


@dataclass
class Site:
    """One nginx ``server`` on ``port`` proxying the README's location to ``upstream``."""

    port: int
    upstream: int
    tls: bool = True

    @property
    def url(self) -> str:
        """The public URL of the app: ``https://127.0.0.1:PORT/agents``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{PREFIX}"


class Nginx:
    """``with Nginx(directory, sites) as nginx:`` runs nginx until the block ends;
    ``nginx.tls`` is an SSL context that trusts its certificate."""

    def __init__(self, directory: Path, sites: list[Site]) -> None:
        self.directory = directory
        self.sites = sites
        self.cert, self.key = self_signed(directory)
        self.tls = ssl.create_default_context(cafile=str(self.cert))
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> Path:
        snippet = readme_snippet()
        servers = []
        for site in self.sites:
            location = snippet.replace("127.0.0.1:8000", f"127.0.0.1:{site.upstream}")
            tls = f"ssl_certificate {self.cert}; ssl_certificate_key {self.key};"
            servers.append(
                f"server {{ listen 127.0.0.1:{site.port}{' ssl' if site.tls else ''};"
                f" {tls if site.tls else ''}\n{location}\n}}"
            )
        temp = self.directory / "temp"
        temp.mkdir(exist_ok=True)
        temps = " ".join(
            f"{kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        path = self.directory / "nginx.conf"
        path.write_text(
            f"daemon off; master_process off; pid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.directory / 'error.log'} warn;\n"
            "events { worker_connections 64; }\n"
            f"http {{ access_log {self.directory / 'access.log'}; {temps}\n"
            + "\n".join(servers)
            + "\n}\n"
        )
        return path

    def __enter__(self) -> Nginx:
        error_log = self.directory / "error.log"
        command = [nginx_binary(), "-p", str(self.directory), "-e", str(error_log)]
        self.process = subprocess.Popen(
            [*command, "-c", str(self.config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for site in self.sites:
                self._wait_until_served(site.url + "/healthz")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_served(self, url: str) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "error.log").read_text(errors="replace")
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{log}")
            try:
                if httpx.get(url, verify=self.tls, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling for readiness, not synchronisation
        raise RuntimeError(f"nginx did not serve {url} in {READY_TIMEOUT}s")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


class LoadBalancer:
    """nginx balancing over two ``upstreams`` (``host:port``) with the shipped site."""

    def __init__(self, workdir: Path, upstreams: tuple[str, str]) -> None:
        self.binary = nginx_binary()
        self.root = workdir / "nginx"
        self.root.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = self.root / "access.log"
        self.error_log = self.root / "error.log"
        self.process: subprocess.Popen[bytes] | None = None
        site = render(
            TEMPLATE.read_text(),
            {
                "AGENTHOST_APP1": upstreams[0],
                "AGENTHOST_APP2": upstreams[1],
                "NGINX_PORT": f"127.0.0.1:{self.port}",
            },
        )
        (self.root / "agenthost.conf").write_text(site)
        (self.root / "nginx.conf").write_text(self._main_config())

    def _main_config(self) -> str:
        temp = "\n".join(
            f"    {kind}_temp_path {self.root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers may write the temp paths
        return f"""{user}daemon off;
worker_processes 1;
pid {self.root / "nginx.pid"};
error_log {self.error_log} warn;
events {{ worker_connections 512; }}
http {{
{temp}
    log_format upstreams '{ACCESS_FORMAT}';
    access_log {self.access_log} upstreams;
    include {self.root / "agenthost.conf"};
}}
"""

    def start(self) -> LoadBalancer:
        command = [self.binary, "-p", str(self.root), "-c", str(self.root / "nginx.conf")]
        check = subprocess.run(
            [*command, "-t", "-e", str(self.error_log)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, f"nginx -t failed:\n{check.stderr}"
        self.process = subprocess.Popen(
            [*command, "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:  # polling for the port to open, not synchronisation
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited:\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx not listening:\n{self.errors()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def access(self) -> list[str]:
        """The access log lines so far (nginx writes each when its request ends)."""
        if not self.access_log.exists():
            return []
        return self.access_log.read_text(errors="replace").splitlines()

    def __enter__(self) -> LoadBalancer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
