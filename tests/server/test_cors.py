"""CORS: real preflights against a real server, off by default, and a browser page on a
second origin calling the API (streamed turn included) in headless chromium."""

from __future__ import annotations

import json
import os
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
from support.browser import PageOrigin
from support.serve import KEYS, Server, bearer, sqlite_server, uid

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
def app_page() -> Iterator[PageOrigin]:
    """The origin of the web app the server allows."""
    with PageOrigin() as origin:
        yield origin


@pytest.fixture(scope="module")
def other_page() -> Iterator[PageOrigin]:
    """An origin the server does not allow."""
    with PageOrigin() as origin:
        yield origin


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory, app_page: PageOrigin) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cors")
    origins = f"{APP},{app_page.url}"
    args = ["--cors-origins", origins, "--cors-max-age", "1234"]
    with sqlite_server(tmp, AGENT, *args, keyed=True) as server:
        yield server


@pytest.fixture
def http(cors_server: Server) -> Iterator[httpx.Client]:
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
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTHOST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
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


# -- a real browser on a second origin -------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><script>
const api = %(api)s, key = %(key)s, session = %(session)s;
async function call(path, init) {
  try {
    const response = await fetch(api + path, init);
    const text = await response.text();
    return {status: response.status, request_id: response.headers.get("X-Request-Id"),
            type: response.headers.get("Content-Type"), text};
  } catch (error) {
    return {failed: String(error)};
  }
}
(async () => {
  const headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key,
                   "X-Request-Id": "from-the-page", "Accept": "text/event-stream"};
  const body = JSON.stringify({message: "My name is Ada", session_id: session, stream: true});
  const streamed = await call("/v1/chat", {method: "POST", headers, body});
  const history = await call("/v1/sessions/" + session + "/messages",
                             {headers: {"Authorization": "Bearer " + key}});
  const refused = await call("/v1/sessions", {headers: {"Authorization": "Bearer wrong"}});
  await fetch("/report", {method: "POST", body: JSON.stringify({streamed, history, refused})});
})();
</script>"""


def page(server: Server, session: str) -> str:
    values = {"api": server.url, "key": KEYS["alice"], "session": session}
    return PAGE % {name: json.dumps(value) for name, value in values.items()}


def test_a_page_on_an_allowed_origin_calls_the_api(
    cors_server: Server, app_page: PageOrigin, tmp_path: Path
) -> None:
    session = uid("browser")
    report = app_page.run(page(cors_server, session), tmp_path)
    streamed = report["streamed"]
    assert streamed["status"] == 200, report
    assert streamed["type"].startswith("text/event-stream")
    assert streamed["request_id"] == "from-the-page"  # an exposed header the script can read
    events = parse_sse(streamed["text"])
    assert events[-1][0] == "done"
    assert "".join(d.get("text", "") for kind, d in events if kind == "delta") == (
        "Nice to meet you, Ada!"
    )
    history = json.loads(report["history"]["text"])
    assert [m["content"] for m in history["messages"]][-1] == "Nice to meet you, Ada!"
    refused = report["refused"]
    assert refused["status"] == 401
    assert json.loads(refused["text"])["error"]["request_id"] == refused["request_id"]


def test_a_page_on_another_origin_is_refused_before_the_api_runs(
    cors_server: Server, other_page: PageOrigin, http: httpx.Client, tmp_path: Path
) -> None:
    session = uid("browser")
    report = other_page.run(page(cors_server, session), tmp_path)
    assert set(report["streamed"]) == {"failed"}, report  # the browser refused the call
    assert set(report["refused"]) == {"failed"}
    # The preflight failed, so the POST was never sent: the session does not exist.
    assert http.get(f"/v1/sessions/{session}", headers=bearer("alice")).status_code == 404
