"""CORS: real preflights over TCP to the served app, off by default, on errors, its settings.

A page on a second origin calling the API in headless chromium: tests/browser/test_cors.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import make_app, parse_sse

from agenthost import Agent, Host, MemoryStore
from agenthost.cli import main
from agenthost.errors import ConfigError
from agenthost.settings import Settings
from support.agents import AGENT
from support.inprocess import InProcessServer, sqlite_in_process
from support.serve import bearer, uid

APP = "https://app.example.com"
EVIL = "https://evil.example.com"
ASKED_HEADERS = (
    "authorization",
    "content-type",
    "idempotency-key",
    "last-event-id",
    "x-request-id",
    "x-user-id",
    "x-tenant-id",
    "x-session-id",
    "a2a-version",
)


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    tmp = tmp_path_factory.mktemp("cors")
    args = ["--cors-origins", APP, "--cors-max-age", "1234"]
    with sqlite_in_process(tmp, AGENT, *args, keyed=True) as server:
        yield server


@pytest.fixture
def http(cors_server: InProcessServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cors_server.url, timeout=30.0) as client:
        yield client


def preflight(
    http: httpx.Client, origin: str, method: str = "POST", headers: tuple[str, ...] = ASKED_HEADERS
) -> httpx.Response:
    return http.options(
        "/v1/chat",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ",".join(headers),
        },
    )


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


def test_preflight_from_an_allowed_origin(http: httpx.Client) -> None:
    response = preflight(http, APP)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert listed(response.headers["Access-Control-Allow-Methods"]) >= {
        "get",
        "post",
        "patch",
        "delete",
    }
    assert listed(response.headers["Access-Control-Allow-Headers"]) >= set(ASKED_HEADERS)
    assert response.headers["Access-Control-Max-Age"] == "1234"
    assert "origin" in listed(response.headers["Vary"])
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["X-Request-Id"]
    for method in ("GET", "PATCH", "DELETE"):
        assert preflight(http, APP, method, ("authorization",)).status_code == 200


def test_preflight_from_a_disallowed_origin_is_refused(http: httpx.Client) -> None:
    response = preflight(http, EVIL)
    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers
    error = response.json()["error"]
    assert error["code"] == "cors_refused" and "origin" in error["message"]
    assert error["request_id"] == response.headers["X-Request-Id"]
    # a near miss is another origin: scheme, port and subdomain all count
    for near in (
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://x.app.example.com",
    ):
        assert preflight(http, near).status_code == 400


def test_preflight_for_a_header_or_method_not_allowed_is_refused(http: httpx.Client) -> None:
    header = preflight(http, APP, "POST", ("authorization", "x-not-an-api-header"))
    assert header.status_code == 400 and "headers" in header.json()["error"]["message"]
    method = preflight(http, APP, "PUT", ("authorization",))
    assert method.status_code == 400 and "method" in method.json()["error"]["message"]
    assert "Access-Control-Allow-Origin" not in header.headers
    assert "Access-Control-Allow-Origin" not in method.headers


def test_responses_to_an_allowed_origin_expose_the_api_headers(http: httpx.Client) -> None:
    body = {"message": "hi", "session_id": uid("s")}
    reply = http.post("/v1/chat", json=body, headers={**bearer("alice"), "Origin": APP})
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == APP
    exposed = listed(reply.headers["Access-Control-Expose-Headers"])
    assert exposed >= {"x-request-id", "retry-after", "x-agenthost-run-id", "x-agenthost-history"}
    refused = http.post("/v1/chat", json=body, headers={"Origin": APP})  # no credentials
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP  # the page can read why
    assert refused.json()["error"]["request_id"] == refused.headers["X-Request-Id"]
    elsewhere = http.post("/v1/chat", json=body, headers={**bearer("alice"), "Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
    # no Origin (a server, curl): nothing allowed, but caches learn the answer depends on it
    plain = http.post("/v1/chat", json=body, headers=bearer("alice"))
    assert plain.status_code == 200 and "Access-Control-Allow-Origin" not in plain.headers
    assert "origin" in listed(plain.headers["Vary"])


def test_a_streamed_turn_cross_origin(http: httpx.Client) -> None:
    body = {"message": "My name is Io", "session_id": uid("s"), "stream": True}
    headers = {**bearer("alice"), "Origin": APP, "X-Request-Id": "cross-1"}
    with http.stream("POST", "/v1/chat", json=body, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["X-Request-Id"] == "cross-1"
        text = response.read().decode()
    assert parse_sse(text)[-1][0] == "done"


# -- off by default, and on 500s ------------------------------------------------------


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    asked = await client.options(
        "/v1/chat", headers={"Origin": APP, "Access-Control-Request-Method": "POST"}
    )
    assert asked.status_code == 405
    assert "Access-Control-Allow-Origin" not in asked.headers
    plain = await client.get("/healthz", headers={"Origin": APP})
    assert "Access-Control-Allow-Origin" not in plain.headers


class BrokenStore(MemoryStore):
    async def sessions(self, **kwargs: Any) -> Any:
        raise RuntimeError("boom")


@pytest.fixture
async def broken_with_cors() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.load({"store": "memory://", "cors_origins": APP, "model": "offline"})
    host = Host(Agent(), store=BrokenStore(max_messages=None))
    transport = httpx.ASGITransport(app=make_app(settings, host=host), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await host.close()


async def test_a_server_error_still_has_cors_headers(broken_with_cors: httpx.AsyncClient) -> None:
    response = await broken_with_cors.get("/v1/sessions", headers={"Origin": APP})
    assert response.status_code == 500
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.json()["error"]["request_id"] == response.headers["X-Request-Id"]


async def test_credentials_are_allowed_only_when_asked() -> None:
    settings = Settings.load(
        {"store": "memory://", "cors_origins": APP, "cors_allow_credentials": True}
    )
    app = make_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/healthz", headers={"Origin": APP})
    await app.state.host.close()
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


# -- settings -------------------------------------------------------------------------


def test_cors_settings_from_environment_and_toml(
    bare_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("agenthost.toml").write_text('cors_origins = ["https://a.example"]\ncors_max_age = 60\n')
    settings = Settings.load()
    assert (settings.cors_origins, settings.cors_max_age) == (["https://a.example"], 60)
    monkeypatch.setenv("AGENTHOST_CORS_ORIGINS", "https://B.example/, http://localhost:3000")
    assert Settings.load().cors_origins == ["https://b.example", "http://localhost:3000"]
    assert Settings.load({"cors_origins": "https://c.example"}).cors_origins == [
        "https://c.example"
    ]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"cors_origins": "*", "cors_allow_credentials": True}, "exact list"),
        ({"cors_origins": "*,https://a.example"}, "alone"),
        ({"cors_origins": "https://a.example/app"}, "not an origin"),
        ({"cors_origins": "app.example.com"}, "not an origin"),
        ({"cors_max_age": -1}, "cors_max_age"),
    ],
)
def test_bad_cors_settings_are_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Settings.load({"store": "memory://", **values})


def test_serve_refuses_any_origin_without_auth(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--store", "memory://", "--cors-origins", "*"]) == 2
    assert "--cors-origins '*' with --auth none" in capsys.readouterr().err
