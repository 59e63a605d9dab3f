"""Turn deadlines over HTTP: 504 ``turn_timeout`` with the request id, an SSE ``error``
event when streaming, and the session usable right after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from serverkit import make_app, parse_sse

from agenthost import Agent, FunctionModel, Host, ModelRequest


async def slow_model(request: ModelRequest) -> str:
    if request.messages[-1].content.startswith("slow"):
        await asyncio.sleep(3600)
    return "quick reply"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    host = Host(Agent(model=FunctionModel(slow_model)), turn_timeout=30)
    transport = httpx.ASGITransport(app=make_app(host=host))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await host.close()


async def test_a_turn_past_its_deadline_is_504_and_the_session_is_free(
    client: httpx.AsyncClient,
) -> None:
    body = {"message": "slow one", "user_id": "dee", "timeout": 0.05}
    response = await client.post("/v1/chat", json=body, headers={"X-Request-Id": "req-deadline"})
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "turn_timeout" and "0.05s" in error["message"]
    assert error["request_id"] == "req-deadline"
    assert response.headers["x-request-id"] == "req-deadline"
    again = await client.post("/v1/chat", json={"message": "hi", "user_id": "dee"})
    assert again.status_code == 200 and again.json()["reply"] == "quick reply"
    page = await client.get("/v1/sessions/default/messages", headers={"X-User-Id": "dee"})
    messages = page.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[1]["meta"]["status"] == "failed"


async def test_a_streamed_turn_past_its_deadline_ends_with_an_error_event(
    client: httpx.AsyncClient,
) -> None:
    body = {"message": "slow streamed", "user_id": "sse", "timeout": 0.05, "stream": True}
    response = await client.post("/v1/chat", json=body)
    assert response.status_code == 200
    events = parse_sse(response.text)
    kind, data = events[-1]
    assert kind == "error" and data["code"] == "turn_timeout"
    again = await client.post("/v1/chat", json={"message": "hi", "user_id": "sse"})
    assert again.json()["reply"] == "quick reply"


async def test_a_bad_timeout_is_422(client: httpx.AsyncClient) -> None:
    for bad in (0, -1, "soon", 10**9):
        response = await client.post(
            "/v1/chat", json={"message": "x", "user_id": "u", "timeout": bad}
        )
        assert response.status_code == 422, (bad, response.text)
