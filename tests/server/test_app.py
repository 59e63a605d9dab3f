"""In-process details of the app: error mapping, logging, OpenAPI, per-session config."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from serverkit import make_app, parse_sse

from agenthost import Agent, FunctionModel, Host, MemoryStore, ModelError, ModelRequest
from agenthost.errors import StoreUnavailable
from agenthost.settings import Settings


def failing_model(request: ModelRequest) -> str:
    raise ModelError("the provider said no")


class BrokenStore(MemoryStore):
    async def sessions(self, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail /etc/secret")

    async def ping(self) -> None:
        raise StoreUnavailable("database is down")


async def serve(host: Host, settings: Settings | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(settings, host=host), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def broken() -> AsyncIterator[httpx.AsyncClient]:
    host = Host(Agent(model=FunctionModel(failing_model)), store=BrokenStore(max_messages=None))
    async with await serve(host) as client:
        yield client
    await host.close()


async def test_unexpected_errors_are_500_without_details(broken: httpx.AsyncClient) -> None:
    response = await broken.get("/v1/sessions")
    assert response.status_code == 500
    request_id = response.headers["X-Request-Id"]
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error",
            "request_id": request_id,
        }
    }


async def test_store_down_makes_readyz_503(broken: httpx.AsyncClient) -> None:
    response = await broken.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert (await broken.get("/healthz")).status_code == 200


async def test_model_failure_is_503_or_an_error_event(broken: httpx.AsyncClient) -> None:
    response = await broken.post("/v1/chat", json={"message": "hi"})
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "model_error",
        "message": "the provider said no",
        "request_id": response.headers["X-Request-Id"],
    }
    streamed = await broken.post("/v1/chat", json={"message": "hi", "stream": True})
    assert streamed.status_code == 200  # the turn had started: the error is an event
    [(kind, data)] = parse_sse(streamed.text)
    assert (kind, data["code"]) == ("error", "model_error")
    assert data["request_id"] == streamed.headers["X-Request-Id"]


async def test_one_log_line_per_turn_without_content(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agenthost")
    body = {"message": "my secret plan", "user_id": "ann", "session_id": "s9"}
    run_id = (await client.post("/v1/chat", json=body)).json()["run_id"]
    [record] = [r for r in caplog.records if r.name == "agenthost.turn"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["tenant_id"] == "default"
    assert (fields["user_id"], fields["session_id"], fields["run_id"]) == ("ann", "s9", run_id)
    assert fields["status"] == "completed"
    assert fields["latency_ms"] >= 0
    assert "secret plan" not in caplog.text


async def test_content_logging_is_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="agenthost")
    settings = Settings.load({"store": "memory://", "model": "offline", "log_content": True})
    app = make_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.post("/v1/chat", json={"message": "my secret plan"})
    assert "my secret plan" in [getattr(r, "fields", {}).get("text") for r in caplog.records]


async def test_config_in_the_chat_body_persists(client: httpx.AsyncClient) -> None:
    body = {"message": "hi", "session_id": "cfg", "config": {"temperature": 0.5}}
    assert (await client.post("/v1/chat", json=body)).status_code == 200
    session = (await client.get("/v1/sessions/cfg")).json()
    assert session["config"] == {"temperature": 0.5}
    unknown = {"message": "hi", "session_id": "cfg", "config": {"colour": "red"}}
    refused = await client.post("/v1/chat", json=unknown)
    assert refused.status_code == 422
    assert "unknown config key 'colour'" in refused.json()["error"]["message"]


async def test_openapi_documents_every_contract_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    expected = {
        ("post", "/v1/chat"),
        ("post", "/chat"),
        ("get", "/v1/sessions"),
        ("post", "/v1/sessions"),
        ("get", "/v1/sessions/{session_id}"),
        ("patch", "/v1/sessions/{session_id}"),
        ("delete", "/v1/sessions/{session_id}"),
        ("get", "/v1/sessions/{session_id}/messages"),
        ("post", "/v1/sessions/{session_id}/approvals/{call_id}"),
        ("get", "/v1/users/{user_id}/export"),
        ("delete", "/v1/users/{user_id}"),
        ("get", "/v1/admin/stats"),
        ("get", "/v1/admin/sessions"),
        ("delete", "/v1/admin/sessions/{tenant_id}/{user_id}/{session_id}"),
        ("post", "/v1/admin/cleanup"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    operations = {(m, p): op for p, item in spec["paths"].items() for m, op in item.items()}
    assert expected <= set(operations)
    for key in expected:
        assert operations[key].get("summary"), key
    schemas = spec["components"]["schemas"]
    for name in ("ChatRequest", "SeedChatRequest", "SessionCreate", "SessionPatch"):
        assert schemas[name].get("examples"), name
    assert (await client.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        (b'{"a":' * 40 + b"1" + b"}" * 40, "is nested deeper than 32 levels"),
        (b'{"n": 123456789012345678901234567890}', "has an integer outside the 64-bit range"),
        (b'{"n": 1e400}', "has a number that is not finite"),
    ],
)
async def test_state_the_store_cannot_hold_is_422(
    client: httpx.AsyncClient, state: bytes, problem: str
) -> None:
    headers = {"Content-Type": "application/json"}
    body = b'{"session_id": "odd", "state": ' + state + b"}"
    response = await client.post("/v1/sessions", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == f"state: {problem}"
    patch = await client.patch(
        "/v1/sessions/odd", content=b'{"state": ' + state + b"}", headers=headers
    )
    assert patch.status_code == 422


async def test_probes_answer_head_as_load_balancers_send_it(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_pages_load_nothing_from_outside(
    client: httpx.AsyncClient, path: str
) -> None:
    page = (await client.get(path)).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
    assert assets, page
    assert all(a.startswith("/") for a in assets), assets  # no CDN, no web fonts
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert (await client.get("/docs/assets/../app.py")).status_code == 404
