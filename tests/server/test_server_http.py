"""End to end over HTTP (real TCP) against the app ``agenthost serve`` runs, served in this
process (--auth none, reject policy)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
from serverkit import parse_sse, read_first_event

from support.serve import uid


def test_the_seeds_curl_scenario(opened: httpx.Client) -> None:
    a, b = uid("user-a"), uid("user-b")
    turns = [
        (a, "My name is Alice", "Nice to meet you, Alice!"),
        (b, "My name is Bob", "Nice to meet you, Bob!"),
        (a, "What is my name?", "Your name is Alice."),
        (b, "What is my name?", "Your name is Bob."),
        (a, "我叫什么?", "你的名字是 Alice"),
    ]
    for user, message, reply in turns:
        response = opened.post("/chat", json={"user_id": user, "message": message})
        assert response.status_code == 200
        assert response.json() == {"user_id": user, "reply": reply}


def test_v1_chat_json_reply(opened: httpx.Client) -> None:
    user = uid()
    response = opened.post(
        "/v1/chat", json={"message": "My name is Zoe", "user_id": user, "session_id": "s1"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == user
    assert body["session_id"] == "s1"
    assert body["run_id"].startswith("run_")
    assert body["reply"] == "Nice to meet you, Zoe!"
    assert body["usage"]["requests"] == 1
    assert body["status"] == "completed"
    other_session = opened.post(
        "/v1/chat", json={"message": "What is my name?", "user_id": user, "session_id": "s2"}
    )
    assert other_session.json()["reply"] == "I don't know your name yet."


def test_v1_chat_streams_server_sent_events(opened: httpx.Client) -> None:
    user = uid()
    body = {"message": "My name is Ivy", "user_id": user, "stream": True}
    response = opened.post("/v1/chat", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [kind for kind, _ in events] == ["delta", "done"]
    assert events[0][1] == {"type": "delta", "text": "Nice to meet you, Ivy!"}
    assert events[1][1]["reply"] == "Nice to meet you, Ivy!"

    by_accept = opened.post(
        "/v1/chat",
        json={"message": '/tool lookup {"topic": "tea"}', "user_id": user},
        headers={"Accept": "text/event-stream"},
    )
    kinds = [kind for kind, _ in parse_sse(by_accept.text)]
    assert kinds == ["tool_call", "tool_result", "delta", "done"]


def test_stream_start_errors_keep_their_status(opened: httpx.Client) -> None:
    bad = {"message": "hi", "user_id": uid(), "stream": True, "config": {"model": "nope"}}
    response = opened.post("/v1/chat", json=bad)
    assert response.status_code == 422
    assert "not allowed" in response.json()["error"]["message"]
    missing = opened.post(
        "/v1/sessions/none/approvals/call_1",
        json={"approve": True, "stream": True},
        headers={"X-User-Id": uid()},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def wait_for_interrupted(client: httpx.Client, user: str, session: str) -> None:
    """Poll until the server has stored the interruption of the turn we walked away from."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = client.get(f"/v1/sessions/{session}/messages", headers={"X-User-Id": user})
        last = page.json()["messages"][-1]
        if last["role"] == "assistant":
            return
        time.sleep(0.02)  # polling a condition with a deadline, not synchronisation
    raise AssertionError("the interrupted turn was never closed")


def test_busy_session_is_409_under_reject_policy_then_recovers(opened: httpx.Client) -> None:
    user = uid()
    slow = {"message": "slow one", "user_id": user, "session_id": "s", "stream": True}
    with opened.stream("POST", "/v1/chat", json=slow) as stream:
        lines = stream.iter_lines()  # kept referenced: dropping it closes the connection
        kind, data = read_first_event(lines)
        assert (kind, data["text"]) == ("delta", "thinking...")
        second = opened.post("/v1/chat", json={"message": "hi", "user_id": user, "session_id": "s"})
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "session_busy"
        other = opened.post("/v1/chat", json={"message": "hi", "user_id": user, "session_id": "t"})
        assert other.status_code == 200  # other sessions are not blocked
    wait_for_interrupted(opened, user, "s")
    after = opened.post("/v1/chat", json={"message": "hi", "user_id": user, "session_id": "s"})
    assert after.status_code == 200
    page = opened.get("/v1/sessions/s/messages", headers={"X-User-Id": user}).json()
    roles = [m["role"] for m in page["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert page["messages"][1]["meta"]["status"] == "interrupted"


def test_sessions_crud_and_paging(opened: httpx.Client) -> None:
    me = {"X-User-Id": uid()}
    created = opened.post("/v1/sessions", json={"session_id": "s1", "state": {"a": 1}}, headers=me)
    assert created.status_code == 201
    assert created.json()["state"] == {"a": 1}
    again = opened.post("/v1/sessions", json={"session_id": "s1"}, headers=me)
    assert again.status_code == 409
    generated = opened.post("/v1/sessions", json={}, headers=me).json()["session_id"]
    listed = opened.get("/v1/sessions", headers=me).json()["sessions"]
    assert {s["session_id"] for s in listed} == {"s1", generated}

    patch = {"state": {"b": 2, "a": None}, "config": {"model": "offline", "temperature": 0.2}}
    patched = opened.patch("/v1/sessions/s1", json=patch, headers=me)
    assert patched.status_code == 200
    assert patched.json()["state"] == {"b": 2}
    assert opened.get("/v1/sessions/s1", headers=me).json()["config"] == {
        "model": "offline",
        "temperature": 0.2,
    }
    refused = opened.patch("/v1/sessions/s1", json={"config": {"model": "gpt-9"}}, headers=me)
    assert refused.status_code == 422
    assert "gpt-9" in refused.json()["error"]["message"]

    for n in range(3):
        body = {"message": f"note {n}", "session_id": "s1"}
        assert opened.post("/v1/chat", json=body, headers=me).status_code == 200
    seqs, after, pages = [], 0, 0
    while after is not None:
        page = opened.get(
            "/v1/sessions/s1/messages", params={"after_seq": after, "limit": 2}, headers=me
        ).json()
        seqs += [m["seq"] for m in page["messages"]]
        after, pages = page["next_after_seq"], pages + 1
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert pages == 4  # the last full page does not know it is last

    assert opened.delete("/v1/sessions/s1", headers=me).json() == {"deleted": 1}
    assert opened.get("/v1/sessions/s1", headers=me).status_code == 404
    assert opened.delete("/v1/sessions/s1", headers=me).status_code == 404
    assert opened.get("/v1/sessions/s1/messages", headers=me).status_code == 404


def test_user_export_and_erase(opened: httpx.Client) -> None:
    user = uid()
    opened.post("/v1/chat", json={"message": "My name is Kim", "user_id": user})
    export = opened.get(f"/v1/users/{user}/export").json()
    assert export["user_id"] == user
    [session] = export["sessions"]
    assert [m["content"] for m in session["messages"]] == [
        "My name is Kim",
        "Nice to meet you, Kim!",
    ]
    assert opened.delete(f"/v1/users/{user}").json() == {"deleted": 1}
    assert opened.get(f"/v1/users/{user}/export").json()["sessions"] == []


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    return response.status_code, body["error"]["code"]


def test_bad_requests_get_clear_errors(opened: httpx.Client) -> None:
    json_headers = {"Content-Type": "application/json"}
    assert error_of(opened.post("/v1/chat", content=b'{"message": ', headers=json_headers)) == (
        400,
        "malformed_json",
    )
    cases = [
        {"user_id": "x"},
        {"message": ""},
        {"message": "   "},
        {"message": 5},
        {"message": "hi", "user_id": ""},
        {"message": "hi", "user_id": "x" * 256},
        {"message": "hi", "user_id": "a\u0001b"},
        {"message": "hi", "session_id": "tab\there"},
        {"message": "hi", "config": {"temperature": 9}},
        {"message": "hi", "config": "fast"},
    ]
    for body in cases:
        assert error_of(opened.post("/v1/chat", json=body)) == (422, "invalid_input"), body
    assert error_of(opened.get("/v1/sessions/" + "s" * 256))[0] == 422
    assert error_of(opened.get("/v1/sessions/a%01b"))[0] == 422
    assert error_of(opened.get("/v1/sessions/unknown")) == (404, "not_found")
    assert error_of(opened.get("/v1/nothing-here")) == (404, "not_found")
    assert error_of(opened.put("/v1/chat", json={})) == (405, "method_not_allowed")


def test_bodies_over_the_limit_are_413(opened: httpx.Client) -> None:
    big = {"message": "x" * 5000, "user_id": uid()}
    assert error_of(opened.post("/v1/chat", json=big)) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to check up front
        yield b'{"message": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    chunked = opened.post(
        "/v1/chat", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert error_of(chunked) == (413, "payload_too_large")


def test_health_readiness_and_metrics(opened: httpx.Client) -> None:
    assert opened.get("/healthz").json() == {"status": "ok"}
    assert opened.get("/readyz").json() == {"status": "ready"}
    opened.post("/v1/chat", json={"message": "count me", "user_id": uid()})
    text = opened.get("/metrics").text
    assert 'agenthost_http_requests_total{method="POST",route="/v1/chat",status="200"}' in text
    assert 'route="/v1/sessions/{session_id}"' in text
    assert "agenthost_turn_duration_seconds_count" in text
    assert "agenthost_model_call_duration_seconds_count" in text
    assert "agenthost_live_sessions " in text
    assert 'agenthost_tokens_total{agent="test-agent",kind="input"}' in text


def test_admin_routes_under_auth_none(opened: httpx.Client) -> None:
    user = uid()
    opened.post("/v1/chat", json={"message": "hi", "user_id": user, "session_id": "live"})
    stats = opened.get("/v1/admin/stats").json()
    for field in (
        "total_sessions",
        "live_sessions",
        "active_sessions",
        "idle_sessions",
        "max_live_sessions",
        "session_ttl_seconds",
        "cleanup_interval_seconds",
        "evictions",
        "expirations",
    ):
        assert field in stats
    assert stats["live_sessions"] >= 1
    live = opened.get("/v1/admin/sessions").json()["sessions"]
    assert any(s["user_id"] == user and s["session_id"] == "live" for s in live)
    evicted = opened.delete(f"/v1/admin/sessions/default/{user}/live")
    assert evicted.json() == {"evicted": True}
    live = opened.get("/v1/admin/sessions").json()["sessions"]
    assert not any(s["user_id"] == user for s in live)
    assert opened.delete(f"/v1/admin/sessions/default/{user}/live").json() == {"evicted": False}
    again = opened.post("/v1/chat", json={"message": "hi", "user_id": user, "session_id": "live"})
    assert again.status_code == 200  # reloaded from the store
    assert opened.post("/v1/admin/cleanup").json() == {"expired": 0, "deleted": 0}


def test_web_page_is_served(opened: httpx.Client) -> None:
    page = opened.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "console/playground.js" in page.text


def test_server_refuses_open_bind_without_insecure_flag() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agenthost.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--store",
            "memory://",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--insecure-bind" in result.stderr
