"""The lean ``POST /v1/chat`` answers exactly as the documented FastAPI route does.

Two apps over their own hosts: one as served (``lean.LeanChat`` in front of the
stack; or, as with tracing on, the lean route first in the router), one with both
taken out, so the FastAPI route answers. Every request below must get the same
status, the same JSON (run ids aside) and the same headers that matter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from serverkit import make_app, parse_sse

from agenthost.server import lean
from agenthost.server.schemas import ChatResponse
from agenthost.settings import Settings
from support.serve import API_KEYS, KEYS

KEYED = {"store": "memory://", "model": "offline", "auth": "api-keys", "api_keys": API_KEYS}


@pytest.fixture(params=["none", "api-keys"])
def auth(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["asgi", "route"])
async def pair(
    request: pytest.FixtureRequest, auth: str
) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    clients = []
    apps = []
    for served in (True, False):
        settings = Settings.load(KEYED if auth == "api-keys" else None)
        if auth == "none":
            settings = Settings.load({"store": "memory://", "model": "offline"})
        app = make_app(settings)
        if not served:
            lean.bypass(app)
        elif request.param == "route":
            lean.bypass(app, route=True)
        apps.append(app)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # 500s as served
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
    try:
        yield tuple(clients)
    finally:
        for client, app in zip(clients, apps, strict=True):
            await client.aclose()
            await app.state.host.close()


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "<id>" if k in ("run_id", "request_id") else _masked(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


CASES: list[tuple[str, dict[str, Any]]] = [
    ("a turn", {"json": {"message": "My name is Alice", "user_id": "alice"}}),
    ("recall", {"json": {"message": "What is my name?", "user_id": "alice"}}),
    (
        "session and config",
        {
            "json": {
                "message": "hi",
                "user_id": "alice",
                "session_id": "s2",
                "config": {"temperature": 0.5},
            }
        },
    ),
    ("header user", {"json": {"message": "hi"}, "headers": {"X-User-Id": "bob"}}),
    (
        "encoded header user",
        {"json": {"message": "hi"}, "headers": {"X-User-Id": "UTF-8''Jos%C3%A9"}},
    ),
    (
        "header and body disagree",
        {"json": {"message": "hi", "user_id": "ann"}, "headers": {"X-User-Id": "bob"}},
    ),
    (
        "header and body agree",
        {"json": {"message": "hi", "user_id": "ann"}, "headers": {"X-User-Id": "ann"}},
    ),
    ("bad header", {"json": {"message": "hi"}, "headers": {"X-User-Id": "UTF-8''%ZZ"}}),
    (
        "malformed json",
        {"content": b'{"message": ', "headers": {"Content-Type": "application/json"}},
    ),
    ("not an object", {"json": ["message"]}),
    ("empty body", {"content": b"", "headers": {"Content-Type": "application/json"}}),
    ("no content type", {"content": b'{"message": "hi", "user_id": "a"}'}),
    (
        "text content type",
        {"content": b'{"message": "hi"}', "headers": {"Content-Type": "text/plain"}},
    ),
    (
        "json with charset",
        {
            "content": b'{"message": "hi", "user_id": "a"}',
            "headers": {"Content-Type": "application/json; charset=utf-8"},
        },
    ),
    (
        "NaN in config",
        {
            "content": b'{"message": "hi", "user_id": "a", "config": {"temperature": NaN}}',
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        "huge integer",
        {
            "content": b'{"message": "hi", "user_id": "a", "timeout": 1' + b"0" * 30 + b"}",
            "headers": {"Content-Type": "application/json"},
        },
    ),
    ("missing message", {"json": {"user_id": "alice"}}),
    (
        "body over the limit",
        {
            "content": b'{"message": "' + b"x" * (1 << 20) + b'"}',
            "headers": {"Content-Type": "application/json"},
        },
    ),
    ("empty message", {"json": {"message": "  ", "user_id": "alice"}}),
    ("unknown field", {"json": {"message": "hi", "user": "bob"}}),
    ("wrong type", {"json": {"message": 5, "user_id": "alice"}}),
    ("bad config", {"json": {"message": "hi", "user_id": "a", "config": {"colour": 1}}}),
    ("bad model", {"json": {"message": "hi", "user_id": "a", "config": {"model": "nope"}}}),
    ("control chars in id", {"json": {"message": "hi", "user_id": "a\\u0007b"}}),
    ("bad timeout", {"json": {"message": "hi", "user_id": "a", "timeout": -1}}),
    ("bad credential", {"json": {"message": "hi"}, "headers": {"Authorization": "Bearer nope"}}),
    ("other scheme", {"json": {"message": "hi"}, "headers": {"Authorization": "Basic eDp5"}}),
    (
        "alice's key",
        {"json": {"message": "hi"}, "headers": {"Authorization": f"Bearer {KEYS['alice']}"}},
    ),
    (
        "alice's key for bob",
        {
            "json": {"message": "hi", "user_id": "bob"},
            "headers": {"Authorization": f"Bearer {KEYS['alice']}"},
        },
    ),
    (
        "service key, no user",
        {"json": {"message": "hi"}, "headers": {"Authorization": f"Bearer {KEYS['service']}"}},
    ),
    (
        "service key for carol",
        {
            "json": {"message": "hi", "user_id": "carol"},
            "headers": {"Authorization": f"Bearer {KEYS['service']}"},
        },
    ),
    (
        "other tenant header",
        {
            "json": {"message": "hi", "user_id": "a"},
            "headers": {"X-Tenant-Id": "elsewhere", "Authorization": f"Bearer {KEYS['alice']}"},
        },
    ),
]


@pytest.mark.parametrize(("name", "request_args"), CASES, ids=[c[0] for c in CASES])
async def test_the_lean_route_answers_like_the_documented_one(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient], name: str, request_args: dict[str, Any]
) -> None:
    served, documented = pair
    answers = [await client.post("/v1/chat", **request_args) for client in (served, documented)]
    lean_answer, reference = answers
    assert lean_answer.status_code == reference.status_code, (name, lean_answer.text)
    assert _masked(lean_answer.json()) == _masked(reference.json()), name
    assert lean_answer.headers["content-type"] == reference.headers["content-type"]
    assert ("x-request-id" in lean_answer.headers) == ("x-request-id" in reference.headers)
    if lean_answer.status_code == 200:
        ChatResponse.model_validate(lean_answer.json())  # the documented schema, every field


async def test_streaming_takes_the_same_path(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    served, documented = pair
    body = {"message": "My name is Alice", "stream": True}
    alice = {"Authorization": f"Bearer {KEYS['alice']}", "X-User-Id": "alice"}
    streams = [
        await client.post("/v1/chat", json=body, headers=alice) for client in (served, documented)
    ]
    assert [s.headers["content-type"].split(";")[0] for s in streams] == ["text/event-stream"] * 2
    events = [_masked(parse_sse(s.text)) for s in streams]
    assert events[0] == events[1] and events[0][-1][0] == "done"
    accept = {"Accept": "text/event-stream", **alice}
    by_header = await served.post("/v1/chat", json={"message": "hi"}, headers=accept)
    assert by_header.status_code == 200, by_header.text
    assert parse_sse(by_header.text)[-1][0] == "done"


async def test_the_documented_route_stays_in_the_schema(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    served, _ = pair
    schema = (await served.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/chat"]["post"]
    assert operation["summary"] == "Run one turn in the caller's session"
    assert "requestBody" in operation


async def test_body_and_header_naming_different_users_is_refused(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    for client in pair:
        response = await client.post(
            "/v1/chat",
            json={"message": "hi", "user_id": "ann"},
            headers={"X-User-Id": "bob", "Authorization": f"Bearer {KEYS['service']}"},
        )
        assert response.status_code == 422, response.text
        assert "different users" in response.json()["error"]["message"]


async def test_metrics_and_errors_of_the_lean_path(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Requests the lean path served are counted as the middleware counts the others, and an
    exception no handler expects is the JSON 500 (with the request id), not a traceback."""
    served, _ = pair
    alice = {"Authorization": f"Bearer {KEYS['alice']}", "X-User-Id": "alice"}
    assert (await served.post("/v1/chat", json={"message": "hi"}, headers=alice)).status_code == 200
    assert (
        await served.post("/v1/chat", json={"user_id": "alice"}, headers=alice)
    ).status_code == 422
    text = (await served.get("/metrics")).text
    for status in ("200", "422"):
        line = (
            f'agenthost_http_requests_total{{method="POST",route="/v1/chat",status="{status}"}} 1.0'
        )
        assert line in text, text
    app = served._transport.app  # type: ignore[attr-defined]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    original = app.state.host.runner.run
    app.state.host.runner.run = broken
    try:
        response = await served.post("/v1/chat", json={"message": "hi"}, headers=alice)
    finally:
        app.state.host.runner.run = original
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error" and "a bug" not in response.text
    assert error["request_id"] == response.headers["x-request-id"]
    text = (await served.get("/metrics")).text
    assert 'route="/v1/chat",status="500"} 1.0' in text
