"""Who may touch whose sessions, over HTTP (TCP, app served in this process), api-keys mode.

Callers: the owner (alice@acme), another user of the same tenant (bob@acme),
a user of another tenant who happens to be called alice too (alice@other), no
credentials, an admin key and a service key (both naming alice).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from support.serve import KEYS, bearer, uid

CALLERS: dict[str, dict[str, str]] = {
    "owner": bearer("alice"),
    "other_user": bearer("bob"),
    "other_tenant": bearer("eve"),
    "anonymous": {},
    "admin": {**bearer("admin"), "X-User-Id": "alice"},
    "service": {**bearer("service"), "X-User-Id": "alice"},
}
SESSION = uid("s")
HIDDEN = {"owner": 200, "other_user": 404, "other_tenant": 404, "anonymous": 401}
OPEN = {"owner": 200, "other_user": 200, "other_tenant": 200, "anonymous": 401}
ROUTES: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, int]]] = {
    "read": ("GET", f"/v1/sessions/{SESSION}", None, HIDDEN),
    "messages": ("GET", f"/v1/sessions/{SESSION}/messages", None, HIDDEN),
    "patch": ("PATCH", f"/v1/sessions/{SESSION}", {"state": {"seen": True}}, HIDDEN),
    "list": ("GET", "/v1/sessions", None, OPEN),
    "chat": ("POST", "/v1/chat", {"message": "What is my name?", "session_id": SESSION}, OPEN),
    "export": ("GET", "/v1/users/alice/export", None, {**OPEN, "other_user": 403}),
}


@pytest.fixture(scope="module", autouse=True)
def alices_session(keyed_server: Any) -> None:
    with httpx.Client(base_url=keyed_server.url) as client:
        body = {"message": "My name is Alice", "session_id": SESSION}
        response = client.post("/v1/chat", json=body, headers=bearer("alice"))
        assert response.status_code == 200


def is_alices(session: dict[str, Any]) -> bool:
    return (session["tenant_id"], session["user_id"], session["session_id"]) == (
        "acme",
        "alice",
        SESSION,
    )


def sees_alices_session(route: str, body: Any) -> bool:
    if route in ("list", "export"):
        return any(is_alices(s) for s in body["sessions"])
    if route == "chat":
        return bool(body["reply"] == "Your name is Alice.")
    if route == "messages":
        return bool(body["messages"][0]["content"] == "My name is Alice")
    return is_alices(body)


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("route", list(ROUTES))
def test_matrix(keyed: httpx.Client, route: str, caller: str) -> None:
    method, path, body, expected = ROUTES[route]
    status = expected.get(caller, 200)  # admin and service act for alice: allowed
    response = keyed.request(method, path, json=body, headers=CALLERS[caller])
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["error"]["code"] in {"not_found", "unauthorized", "forbidden"}
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        return
    acts_as_alice = caller in ("owner", "admin", "service")
    assert sees_alices_session(route, response.json()) == acts_as_alice


def test_delete_matrix(keyed: httpx.Client) -> None:
    session = uid("doomed")
    keyed.post("/v1/chat", json={"message": "hi", "session_id": session}, headers=bearer("alice"))
    path = f"/v1/sessions/{session}"
    for caller, status in (("other_user", 404), ("other_tenant", 404), ("anonymous", 401)):
        assert keyed.delete(path, headers=CALLERS[caller]).status_code == status
    assert keyed.get(path, headers=bearer("alice")).status_code == 200  # still there
    assert keyed.delete(path, headers=CALLERS["admin"]).json() == {"deleted": 1}
    assert keyed.get(path, headers=bearer("alice")).status_code == 404
    keyed.post("/v1/chat", json={"message": "hi", "session_id": session}, headers=bearer("alice"))
    assert keyed.delete(path, headers=bearer("alice")).json() == {"deleted": 1}


def test_erasing_a_user_is_only_for_that_user(keyed: httpx.Client) -> None:
    assert keyed.delete("/v1/users/alice", headers=bearer("bob")).status_code == 403
    assert keyed.delete("/v1/users/alice", headers={}).status_code == 401
    assert keyed.get(f"/v1/sessions/{SESSION}", headers=bearer("alice")).status_code == 200
    user = {**bearer("service"), "X-User-Id": uid("temp")}
    keyed.post("/v1/chat", json={"message": "hi"}, headers=user)
    assert keyed.delete(f"/v1/users/{user['X-User-Id']}", headers=user).json() == {"deleted": 1}


def test_a_user_key_cannot_act_for_someone_else(keyed: httpx.Client) -> None:
    as_bob = keyed.post(
        "/v1/chat", json={"message": "hi", "user_id": "bob"}, headers=bearer("alice")
    )
    assert as_bob.status_code == 403
    header = {**bearer("alice"), "X-User-Id": "bob"}
    assert keyed.get("/v1/sessions", headers=header).status_code == 403
    naming_self = {**bearer("alice"), "X-User-Id": "alice"}
    assert keyed.get("/v1/sessions", headers=naming_self).status_code == 200
    seed = keyed.post("/chat", json={"user_id": "bob", "message": "hi"}, headers=bearer("alice"))
    assert seed.status_code == 403


def test_service_keys_stay_in_their_tenant_and_must_name_a_user(keyed: httpx.Client) -> None:
    assert keyed.get("/v1/sessions", headers=bearer("service")).status_code == 422
    other = {**bearer("service"), "X-User-Id": "alice", "X-Tenant-Id": "other"}
    assert keyed.get("/v1/sessions", headers=other).status_code == 403
    body = {"message": "What is my name?", "user_id": "alice", "session_id": SESSION}
    reply = keyed.post("/v1/chat", json=body, headers=bearer("service")).json()["reply"]
    assert reply == "Your name is Alice."


def test_admin_routes_need_admin(keyed: httpx.Client) -> None:
    routes = [
        ("GET", "/v1/admin/stats"),
        ("GET", "/v1/admin/sessions"),
        ("POST", "/v1/admin/cleanup"),
        ("DELETE", f"/v1/admin/sessions/acme/alice/{SESSION}"),
    ]
    for method, path in routes:
        for caller in ("owner", "service"):
            assert keyed.request(method, path, headers=CALLERS[caller]).status_code == 403
        assert keyed.request(method, path).status_code == 401
        assert keyed.request(method, path, headers=bearer("admin")).status_code == 200


def test_admins_may_act_in_other_tenants(keyed: httpx.Client) -> None:
    headers = {**bearer("admin"), "X-Tenant-Id": "other", "X-User-Id": "alice"}
    listed = keyed.get("/v1/sessions", headers=headers).json()["sessions"]
    assert all(s["tenant_id"] == "other" for s in listed)
    assert not any(is_alices(s) for s in listed)


def test_bad_credentials_are_401(keyed: httpx.Client) -> None:
    for header in (
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {KEYS['alice']}x"},
        {"Authorization": f"Basic {KEYS['alice']}"},
        {"Authorization": "Bearer"},
    ):
        response = keyed.get("/v1/sessions", headers=header)
        assert response.status_code == 401, header
        assert KEYS["alice"] not in response.text
    assert keyed.get("/healthz").status_code == 200  # probes need no credentials


def test_keys_are_not_logged(keyed_server: Any) -> None:
    """Nothing logged while serving (wrong keys included) shows a key; the settings line of
    a real ``agenthost serve`` is checked in test_server_workers."""
    logs = keyed_server.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(line["message"] == "serving" for line in lines)
    for key in KEYS.values():
        assert key not in logs
