"""Debian's nginx in front of ``agenthost serve``, configured with the README's own snippet.

:func:`readme_snippet` is the ``location`` block of the README's "Behind a reverse
proxy" section; :class:`Nginx` runs one nginx (no daemon, one process, everything in a
temporary folder) with a ``server`` block per :class:`Site`, each holding that snippet
with the site's upstream port in place of the README's 8000. A site may end TLS with a
self-signed certificate for 127.0.0.1 (:func:`self_signed`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

README = Path(__file__).parents[2] / "README.md"
PREFIX = "/agents"  # the prefix of the README's snippet
READY_TIMEOUT = 30.0


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
