"""Who may touch whose memories, over HTTP (TCP, app served in this process), api-keys mode.

The callers of the sessions' matrix: the owner (alice@acme), another user of the same
tenant (bob@acme), a user of another tenant also called alice (alice@other), no
credentials, and an admin key and a service key both naming alice.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.serve import bearer

CALLERS: dict[str, dict[str, str]] = {
    "owner": bearer("alice"),
    "other_user": bearer("bob"),
    "other_tenant": bearer("eve"),
    "anonymous": {},
    "admin": {**bearer("admin"), "X-User-Id": "alice"},
    "service": {**bearer("service"), "X-User-Id": "alice"},
}
ACTS_AS_ALICE = {"owner", "admin", "service"}
HIDDEN = {"other_user": 404, "other_tenant": 404, "anonymous": 401}
OPEN = {"anonymous": 401}


@pytest.fixture(scope="module")
def alices_memory(keyed_server: Any) -> dict[str, Any]:
    with httpx.Client(base_url=keyed_server.url) as client:
        body = {"text": "Alice's locker code is 4711", "kind": "secret", "tags": ["locker"]}
        response = client.post("/v1/memories", json=body, headers=bearer("alice"))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


def routes(memory_id: str) -> dict[str, tuple[str, str, dict[str, Any] | None, dict[str, int]]]:
    return {
        "read": ("GET", f"/v1/memories/{memory_id}", None, HIDDEN),
        "patch": ("PATCH", f"/v1/memories/{memory_id}", {"tags": ["locker", "seen"]}, HIDDEN),
        "list": ("GET", "/v1/memories", None, OPEN),
        "search": ("GET", "/v1/memories?q=locker+code", None, OPEN),
        "create": ("POST", "/v1/memories", {"text": "I was here"}, {**OPEN}),
        "export": ("GET", "/v1/users/alice/export", None, {**OPEN, "other_user": 403}),
    }


def sees_alices_memory(route: str, body: Any, memory_id: str) -> bool:
    if route in ("list", "search"):
        return any(m["id"] == memory_id for m in body["memories"])
    if route == "export":
        return any(m["id"] == memory_id for m in body["memories"])
    if route == "create":
        return bool((body["tenant_id"], body["user_id"]) == ("acme", "alice"))
    return bool(body["id"] == memory_id and body["text"] == "Alice's locker code is 4711")


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("route", list(routes("x")))
def test_matrix(
    keyed: httpx.Client, alices_memory: dict[str, Any], route: str, caller: str
) -> None:
    memory_id = alices_memory["id"]
    method, path, body, expected = routes(memory_id)[route]
    status = expected.get(caller, 201 if method == "POST" else 200)
    response = keyed.request(method, path, json=body, headers=CALLERS[caller])
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["error"]["code"] in {"not_found", "unauthorized", "forbidden"}
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        return
    assert sees_alices_memory(route, response.json(), memory_id) == (caller in ACTS_AS_ALICE)


def test_delete_matrix(keyed: httpx.Client) -> None:
    created = keyed.post("/v1/memories", json={"text": "doomed"}, headers=bearer("alice")).json()
    path = f"/v1/memories/{created['id']}"
    for caller, status in (("other_user", 404), ("other_tenant", 404), ("anonymous", 401)):
        assert keyed.delete(path, headers=CALLERS[caller]).status_code == status
    assert keyed.get(path, headers=bearer("alice")).status_code == 200  # still there
    assert keyed.delete(path, headers=CALLERS["admin"]).json() == {"deleted": 1}
    assert keyed.get(path, headers=bearer("alice")).status_code == 404
    again = keyed.post("/v1/memories", json={"text": "doomed"}, headers=bearer("alice")).json()
    service = keyed.delete(f"/v1/memories/{again['id']}", headers=CALLERS["service"])
    assert service.json() == {"deleted": 1}


def test_credentials_cannot_reach_past_their_user_or_tenant(keyed: httpx.Client) -> None:
    as_bob = keyed.post(
        "/v1/memories", json={"text": "hi", "user_id": "bob"}, headers=bearer("alice")
    )
    assert as_bob.status_code == 403
    assert (
        keyed.get("/v1/memories", headers={**bearer("alice"), "X-User-Id": "bob"}).status_code
        == 403
    )
    assert keyed.get("/v1/memories", headers=bearer("service")).status_code == 422  # name a user
    other = {**bearer("service"), "X-User-Id": "alice", "X-Tenant-Id": "other"}
    assert keyed.get("/v1/memories", headers=other).status_code == 403
    admin_elsewhere = {**bearer("admin"), "X-User-Id": "alice", "X-Tenant-Id": "other"}
    listed = keyed.get("/v1/memories", headers=admin_elsewhere).json()["memories"]
    assert all(m["tenant_id"] == "other" for m in listed)


def test_erasing_a_user_takes_their_memories_only(keyed: httpx.Client) -> None:
    temp = {**bearer("service"), "X-User-Id": "memory-temp"}
    keyed.post("/v1/memories", json={"text": "temporary"}, headers=temp)
    keyed.post("/v1/chat", json={"message": "hi"}, headers=temp)
    assert keyed.delete("/v1/users/memory-temp", headers=bearer("bob")).status_code == 403
    assert keyed.delete("/v1/users/memory-temp", headers=temp).json() == {"deleted": 1}
    assert keyed.get("/v1/memories", headers=temp).json()["memories"] == []
    alice = keyed.get("/v1/memories", headers=bearer("alice")).json()["memories"]
    assert any(m["text"] == "Alice's locker code is 4711" for m in alice)
