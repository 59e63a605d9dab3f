"""``agenthost.server.metrics`` in-process: labels stay bounded, each app has its own registry,
turns are counted by final status, tokens of a run paused for approval count once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from serverkit import make_app

from agenthost.settings import Settings
from support.agents import AGENT

ALICE = {"X-User-Id": "alice"}


def sample(text: str, name: str, labels: str = "") -> float:
    """The sum of ``name``'s series whose labels include ``labels`` (``a="x",b="y"``)."""
    wanted = set(re.findall(r'\w+="[^"]*"', labels))
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and wanted <= set(re.findall(r'\w+="[^"]*"', match.group(1) or "")):
            total += float(match.group(2))
    return total


async def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=ALICE)


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    app = make_app(Settings.load({"store": "memory://", "agent": AGENT}))
    yield app
    await app.state.host.close()


async def test_requests_are_counted_by_route_template_never_by_raw_path(app: FastAPI) -> None:
    async with await client_of(app) as client:
        for session in ("a", "b", "c"):
            await client.post("/v1/chat", json={"message": "hi", "session_id": session})
            assert (await client.get(f"/v1/sessions/{session}")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404
        text = (await client.get("/metrics")).text
    route = 'method="GET",route="/v1/sessions/{session_id}",status="200"'
    assert sample(text, "agenthost_http_requests_total", route) == 3
    assert (
        sample(text, "agenthost_http_requests_total", 'method="GET",route="unmatched",status="404"')
        == 1
    )
    assert 'route="/v1/sessions/a"' not in text and "/no/such/page" not in text
    assert sample(text, "agenthost_turn_duration_seconds_count", 'status="completed"') == 3


async def test_each_app_counts_only_its_own_requests(app: FastAPI) -> None:
    other = make_app(Settings.load({"store": "memory://", "model": "offline"}))
    try:
        async with await client_of(app) as first, await client_of(other) as second:
            await first.post("/v1/chat", json={"message": "hi"})
            text = (await second.get("/metrics")).text
        assert sample(text, "agenthost_turn_duration_seconds_count", 'status="completed"') == 0
        chat = 'method="POST",route="/v1/chat",status="200"'
        assert sample(text, "agenthost_http_requests_total", chat) == 0
    finally:
        await other.state.host.close()


async def test_tokens_of_a_run_paused_for_approval_count_once(app: FastAPI) -> None:
    async with await client_of(app) as client:
        paused = await client.post(
            "/v1/chat",
            json={"message": '/tool transfer {"amount": 5, "to": "bob"}', "session_id": "pay"},
        )
        assert paused.json()["status"] == "awaiting_approval"
        call = paused.json()["approvals"][0]["id"]
        done = await client.post(f"/v1/sessions/pay/approvals/{call}", json={"approve": True})
        assert done.json()["status"] == "completed"
        usage = done.json()["usage"]  # the whole run's, both halves
        assert usage["input_tokens"] > paused.json()["usage"]["input_tokens"]
        text = (await client.get("/metrics")).text
    assert sample(text, "agenthost_tokens_total", 'kind="input"') == usage["input_tokens"]
    assert sample(text, "agenthost_tokens_total", 'kind="output"') == usage["output_tokens"]
    assert sample(text, "agenthost_turn_duration_seconds_count", 'status="awaiting_approval"') == 1


async def test_live_sessions_and_model_calls(app: FastAPI) -> None:
    async with await client_of(app) as client:
        await client.post("/v1/chat", json={"message": "My name is Alice", "session_id": "x"})
        await client.post("/v1/chat", json={"message": "hello", "session_id": "y"})
        text = (await client.get("/metrics")).text
    assert sample(text, "agenthost_live_sessions") == 2
    assert (
        sample(text, "agenthost_model_call_duration_seconds_count", 'model="slow-when-asked"') == 2
    )


async def test_a_client_that_leaves_while_sending_is_not_a_server_error(app: FastAPI) -> None:
    """No response was started for it: counted as 499 (as nginx logs it), on the hot route
    and on any other, and not in the dashboard's error series."""

    async def leaves() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def nothing(message: object) -> None:
        raise AssertionError(f"nothing may be sent to a client that left: {message}")

    for path in ("/v1/chat", "/v1/sessions/s1/state"):
        method = "POST" if path == "/v1/chat" else "PATCH"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"x-user-id", b"alice")],
            "client": ("127.0.0.1", 5000),
            "server": ("test", 80),
        }
        await app(scope, leaves, nothing)
    async with await client_of(app) as client:
        text = (await client.get("/metrics")).text
    assert sample(text, "agenthost_http_requests_total", 'status="499"') == 2
    assert sample(text, "agenthost_http_requests_total", 'status="500"') == 0
    assert sum(point["http_errors"] for point in app.state.metrics.series.points()) == 0
