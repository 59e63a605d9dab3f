"""X-Request-Id: accepted or generated, echoed on every response, in error bodies, SSE error
events and every log line of the request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from serverkit import log_lines, make_app, parse_sse

from agenthost import Agent, FunctionModel, Host, MemoryStore, ModelError, ModelRequest
from agenthost.server.requestid import RequestIdFilter, current_request_id
from agenthost.settings import Settings
from support.agents import AGENT
from support.serve import Server, sqlite_server, uid

GENERATED = re.compile(r"[0-9a-f]{32}")


def failing_model(request: ModelRequest) -> str:
    raise ModelError("the provider said no")


class BrokenStore(MemoryStore):
    async def sessions(self, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail")


@pytest.fixture
async def small() -> AsyncIterator[httpx.AsyncClient]:
    """An in-process app with a 100-byte body limit."""
    settings = Settings.load({"store": "memory://", "model": "offline", "max_body_bytes": 100})
    app = make_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await app.state.host.close()


@pytest.fixture
async def broken() -> AsyncIterator[httpx.AsyncClient]:
    """Its model fails every turn and its store fails to list sessions (a 500)."""
    host = Host(Agent(model=FunctionModel(failing_model)), store=BrokenStore(max_messages=None))
    transport = httpx.ASGITransport(app=make_app(host=host), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await host.close()


def error_request_id(response: httpx.Response) -> str:
    request_id: str = response.json()["error"]["request_id"]
    assert request_id == response.headers["X-Request-Id"]
    return request_id


async def test_a_request_id_is_generated_for_each_request(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/chat", json={"message": "hi"})
    second = await client.get("/healthz")
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(GENERATED.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]


async def test_a_valid_request_id_round_trips_through_a_turn(client: httpx.AsyncClient) -> None:
    given = "req-2024.01:abc/1+x=y@edge_~"
    response = await client.post(
        "/v1/chat", json={"message": "hi"}, headers={"X-Request-Id": given}
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == given
    assert response.headers.get_list("X-Request-Id") == [given]  # one header, not two


@pytest.mark.parametrize(
    "sent",
    ["", "has space", "<script>", "é", "x" * 129, "a,b", 'quote"d'],
    ids=["empty", "space", "markup", "non-ascii", "too-long", "comma", "quote"],
)
async def test_an_unacceptable_request_id_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": sent.encode()})
    assert response.status_code == 200  # a tracing header never fails the request
    assert GENERATED.fullmatch(response.headers["X-Request-Id"])


async def test_the_longest_accepted_request_id(client: httpx.AsyncClient) -> None:
    given = "x" * 128
    response = await client.get("/healthz", headers={"X-Request-Id": given})
    assert response.headers["X-Request-Id"] == given


async def test_client_errors_carry_the_request_id(
    client: httpx.AsyncClient, small: httpx.AsyncClient
) -> None:
    headers = {"X-Request-Id": "err-1"}
    not_found = await client.get("/v1/sessions/nope", headers=headers)
    invalid = await client.post("/v1/chat", json={"messag": "hi"}, headers=headers)
    malformed = await client.post(
        "/v1/chat", content=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    no_route = await client.get("/v1/nothing-here", headers=headers)
    too_large = await small.post("/v1/chat", json={"message": "x" * 200}, headers=headers)
    statuses = [r.status_code for r in (not_found, invalid, malformed, no_route, too_large)]
    assert statuses == [404, 422, 400, 404, 413]
    for response in (not_found, invalid, malformed, no_route, too_large):
        assert error_request_id(response) == "err-1"


async def test_server_and_model_errors_carry_the_request_id(
    broken: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    crashed = await broken.get("/v1/sessions", headers={"X-Request-Id": "crash-1"})
    assert crashed.status_code == 500
    assert error_request_id(crashed) == "crash-1"
    [logged] = [r for r in caplog.records if r.getMessage().startswith("unhandled RuntimeError")]
    assert logged.request_id == "crash-1"  # type: ignore[attr-defined]
    unavailable = await broken.post("/v1/chat", json={"message": "hi"})
    assert unavailable.status_code == 503
    assert GENERATED.fullmatch(error_request_id(unavailable))


async def test_a_streamed_turn_carries_the_request_id(
    client: httpx.AsyncClient, broken: httpx.AsyncClient
) -> None:
    body = {"message": "hi", "stream": True}
    streamed = await client.post("/v1/chat", json=body, headers={"X-Request-Id": "sse-1"})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.headers["X-Request-Id"] == "sse-1"
    assert [kind for kind, _ in parse_sse(streamed.text)][-1] == "done"
    failed = await broken.post("/v1/chat", json=body, headers={"X-Request-Id": "sse-2"})
    assert failed.status_code == 200 and failed.headers["X-Request-Id"] == "sse-2"
    [(kind, data)] = parse_sse(failed.text)
    assert (kind, data["code"], data["request_id"]) == ("error", "model_error", "sse-2")


async def test_no_request_id_outside_a_request(client: httpx.AsyncClient) -> None:
    await client.get("/healthz", headers={"X-Request-Id": "gone"})
    assert current_request_id() is None  # the in-process call did not leak it


# -- log lines of a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def logging_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("request-id")
    with sqlite_server(tmp, AGENT, "--log-level", "debug") as server:
        yield server


def test_every_log_line_of_a_request_has_its_id(logging_server: Server) -> None:
    user = uid("log")
    request_id = f"ops-{uid()}"
    with httpx.Client(base_url=logging_server.url, timeout=30.0) as http:
        reply = http.post(
            "/v1/chat",
            json={"message": "My name is Lee", "user_id": user},
            headers={"X-Request-Id": request_id},
        )
        streamed = http.post("/v1/chat", json={"message": "hello", "user_id": user, "stream": True})
        missing = http.get("/v1/sessions/nope", headers={"X-User-Id": user})
    assert (reply.status_code, streamed.status_code, missing.status_code) == (200, 200, 404)
    streamed_id, missing_id = streamed.headers["X-Request-Id"], missing.headers["X-Request-Id"]
    lines = log_lines(logging_server, request_id, streamed_id, missing_id)

    def of(rid: str, message: str) -> list[dict[str, Any]]:
        return [
            line for line in lines if line.get("request_id") == rid and line["message"] == message
        ]

    [turn] = of(request_id, "turn")
    assert (turn["user_id"], turn["run_id"]) == (user, reply.json()["run_id"])
    [access] = of(request_id, "request")
    assert (access["route"], access["status"]) == ("/v1/chat", 200)
    [streamed_turn] = of(streamed_id, "turn")
    assert streamed_turn["user_id"] == user and streamed_turn["status"] == "completed"
    assert error_request_id(missing) == missing_id
    [missing_access] = of(missing_id, "request")
    assert missing_access["status"] == 404
    # A line logged outside any request (start-up) carries none.
    [settings_line] = [line for line in lines if line["message"] == "settings"]
    assert "request_id" not in settings_line


async def test_the_run_record_keeps_the_request_id(client: httpx.AsyncClient) -> None:
    user = uid("runs")
    me = {"X-User-Id": user}
    turns = [
        ("/v1/chat", {"message": "hi", "user_id": user}, "rec-json"),
        ("/v1/chat", {"message": "hi", "user_id": user, "stream": True}, "rec-sse"),
        ("/chat", {"message": "hi", "user_id": user}, "rec-seed"),
        (
            "/v1/chat/completions",
            {"model": "agent", "messages": [{"role": "user", "content": "hi"}], "user": user},
            "rec-openai",
        ),
    ]
    a2a_message = {
        "kind": "message",
        "role": "user",
        "messageId": uid("m"),
        "parts": [{"kind": "text", "text": "hi"}],
    }
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": a2a_message}}
    turns.append(("/a2a", rpc, "rec-a2a"))
    for path, body, request_id in turns:
        response = await client.post(path, json=body, headers={**me, "X-Request-Id": request_id})
        assert response.status_code == 200, response.text
        if path == "/a2a":  # JSON-RPC errors come with 200
            assert "result" in response.json(), response.text
    export = (await client.get(f"/v1/users/{user}/export", headers=me)).json()
    runs = [run for session in export["sessions"] for run in session["runs"]]
    assert sorted(run["request_id"] for run in runs) == sorted(t[2] for t in turns)
