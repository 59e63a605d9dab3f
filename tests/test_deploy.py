"""The deployment artefacts agree with each other and with the settings they feed: the
``Dockerfile``, ``compose.yaml`` and the nginx site (which ``test_load_balancer.py`` runs
for real; no Docker daemon runs here, so the image and compose are checked as text)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agenthost.settings import Settings
from support.nginx import TEMPLATE, render

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def instruction(name: str) -> list[str]:
    """The arguments of every ``NAME`` instruction of the Dockerfile (continuations joined)."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.MULTILINE)]


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in instruction("ENV"):
        env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_the_image_is_slim_non_root_all_extras_serving_with_a_health_check() -> None:
    bases = instruction("FROM")
    assert bases and all("-slim" in base for base in bases)
    assert [u for u in instruction("USER") if u not in ("root", "0")] == instruction("USER") != []
    assert any('"agenthost[all]"' in run for run in instruction("RUN"))
    assert instruction("ENTRYPOINT") == ['["agenthost"]']
    assert instruction("CMD") == ['["serve"]']
    [health] = instruction("HEALTHCHECK")
    assert "/healthz" in health and "${AGENTHOST_PORT:-8000}" in health
    assert image_environment()["AGENTHOST_PORT"] == "8000"
    assert instruction("EXPOSE") == ["8000"]


def test_compose_runs_postgres_redis_two_replicas_and_nginx() -> None:
    assert set(SERVICES) == {"postgres", "redis", "app1", "app2", "nginx"}
    for name in ("app1", "app2"):
        app = SERVICES[name]
        assert app["build"] == "."
        assert app["environment"]["AGENTHOST_STORE"].startswith("postgresql://")
        assert "@postgres:5432/" in app["environment"]["AGENTHOST_STORE"]
        assert app["environment"]["AGENTHOST_COORDINATION"] == "redis://redis:6379/0"
        assert set(app["depends_on"]) == {"postgres", "redis"}
    nginx = SERVICES["nginx"]
    assert "./deploy/nginx/templates:/etc/nginx/templates:ro" in nginx["volumes"]
    assert {d: c["condition"] for d, c in nginx["depends_on"].items()} == {
        "app1": "service_healthy",  # the image's HEALTHCHECK
        "app2": "service_healthy",
    }


def test_the_nginx_site_has_a_value_for_every_placeholder_in_compose() -> None:
    values = {k: str(v) for k, v in SERVICES["nginx"]["environment"].items()}
    site = render(TEMPLATE.read_text(), values)  # raises on a placeholder without a value
    assert "server app1:8000 " in site and "server app2:8000 " in site
    assert "listen 80;" in site


def test_a_replicas_settings_load_and_pass_the_start_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no agenthost.toml around
    environment = {**image_environment(), **SERVICES["app1"]["environment"]}
    environment["AGENTHOST_API_KEYS"] = "key-acme:acme:*"  # what compose makes the user set
    for name, value in environment.items():
        if name.startswith("AGENTHOST_"):
            monkeypatch.setenv(name, str(value))
    settings = Settings.load()
    settings.check()  # a non-loopback bind with api-keys auth: allowed
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 8000, 2)
    assert settings.auth == "api-keys" and settings.coordination == "redis://redis:6379/0"
