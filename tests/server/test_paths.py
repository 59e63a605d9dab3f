"""Every id the API accepts round-trips through body, headers and path; bad bodies are 422.

The id header rule (``agenthost.keys.id_from_header``): the header's bytes are UTF-8,
or ``UTF-8''`` and the percent-encoded UTF-8. Ids sit in paths percent-encoded, ``/``
as ``%2F`` (``agenthost.server.paths``).
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from serverkit import make_app

from agenthost.keys import id_to_header
from agenthost.settings import Settings
from support.serve import uid

IDS = ["José", "用户", "a b", "team/alpha", "100%", "a+b", "x%2Fy", "名前/a b+%41"]


def seg(value: str) -> str:
    return quote(value, safe="")


def utf8(value: str) -> dict[str, bytes]:
    return {"X-User-Id": value.encode()}


def percent(value: str) -> dict[str, str]:
    return {"X-User-Id": id_to_header(value)}


@pytest.mark.parametrize("ident", IDS)
async def test_body_header_and_path_name_the_same_user_and_session(
    client: httpx.AsyncClient, ident: str
) -> None:
    body = {"message": "My name is Zed", "user_id": ident, "session_id": ident}
    first = await client.post("/v1/chat", json=body)
    assert first.status_code == 200, first.text
    assert (first.json()["user_id"], first.json()["session_id"]) == (ident, ident)

    # The header (raw UTF-8, then the percent form) reaches the same user's session.
    for headers in (utf8(ident), percent(ident)):
        again = await client.post(
            "/v1/chat", json={"message": "What is my name?", "session_id": ident}, headers=headers
        )
        assert again.status_code == 200, again.text
        assert again.json()["reply"] == "Your name is Zed."
        read = await client.get(f"/v1/sessions/{seg(ident)}", headers=headers)
        assert read.status_code == 200, read.text
        assert (read.json()["user_id"], read.json()["session_id"]) == (ident, ident)

    page = await client.get(f"/v1/sessions/{seg(ident)}/messages", headers=utf8(ident))
    assert [m["role"] for m in page.json()["messages"]] == ["user", "assistant"] * 3
    patched = await client.patch(
        f"/v1/sessions/{seg(ident)}", json={"state": {"k": 1}}, headers=percent(ident)
    )
    assert patched.json()["state"] == {"k": 1}
    exported = await client.get(f"/v1/users/{seg(ident)}/export")
    assert exported.status_code == 200, exported.text
    assert [s["session_id"] for s in exported.json()["sessions"]] == [ident]
    evicted = await client.delete(f"/v1/admin/sessions/default/{seg(ident)}/{seg(ident)}")
    assert evicted.status_code == 200, evicted.text
    deleted = await client.delete(f"/v1/sessions/{seg(ident)}", headers=utf8(ident))
    assert deleted.json() == {"deleted": 1}
    await client.post("/v1/chat", json=body)
    erased = await client.delete(f"/v1/users/{seg(ident)}")
    assert erased.json() == {"deleted": 1}
    gone = await client.get(f"/v1/users/{seg(ident)}/export")
    assert gone.json()["sessions"] == []


async def test_a_tenant_header_names_the_tenant_the_body_user_lives_in(
    client: httpx.AsyncClient,
) -> None:
    tenant = "Société/北"
    headers = {"X-Tenant-Id": tenant.encode(), **utf8("Zoë")}
    await client.post("/v1/chat", json={"message": "My name is Zoë"}, headers=headers)
    percent_form = {"X-Tenant-Id": id_to_header(tenant), **percent("Zoë")}
    listed = await client.get("/v1/sessions", headers=percent_form)
    assert [(s["tenant_id"], s["user_id"]) for s in listed.json()["sessions"]] == [(tenant, "Zoë")]
    other = await client.get("/v1/sessions", headers=utf8("Zoë"))  # the default tenant
    assert other.json()["sessions"] == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-User-Id", "José".encode("latin-1")),  # Latin-1, not UTF-8
        ("X-Tenant-Id", b"\xff\xfe"),
        ("X-User-Id", b"UTF-8''Jos%E9"),  # percent-encoded Latin-1
        ("X-User-Id", b"UTF-8''%0A"),  # a control character
    ],
)
async def test_an_id_header_that_is_not_utf8_is_refused_not_reinterpreted(
    client: httpx.AsyncClient, header: str, value: bytes
) -> None:
    response = await client.post("/v1/chat", json={"message": "hi"}, headers={header: value})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_id"
    assert header in error["message"]


async def test_a_path_id_is_checked_like_a_body_id(client: httpx.AsyncClient) -> None:
    too_long = await client.get(f"/v1/sessions/{'s' * 256}")
    assert too_long.status_code == 422
    assert "255" in too_long.json()["error"]["message"]
    control = await client.get("/v1/users/a%0Ab/export")
    assert control.status_code == 422
    assert "control" in control.json()["error"]["message"]


async def test_the_session_header_of_the_openai_face_round_trips(
    client: httpx.AsyncClient,
) -> None:
    session = "会话/1 %"
    body = {"model": "agent", "messages": [{"role": "user", "content": "My name is Kai"}]}
    headers = {"X-Session-Id": session.encode(), **utf8("Kai")}
    first = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["X-Session-Id"] == id_to_header(session)
    read = await client.get(f"/v1/sessions/{seg(session)}", headers=percent("Kai"))
    assert read.json()["session_id"] == session


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat", {"user": "bob", "message": "hi"}, "user"),
        ("/chat", {"user_id": "bob", "message": "hi", "session_id": "s"}, "session_id"),
        ("/v1/sessions", {"session_id": "s", "sate": {}}, "sate"),
        ("/v1/sessions/default/approvals/c1", {"approve": True, "aprove": False}, "aprove"),
    ],
)
async def test_an_unknown_field_is_422_naming_it(
    client: httpx.AsyncClient, path: str, body: dict[str, object], field: str
) -> None:
    response = await client.post(path, json=body, headers=utf8(uid()))
    assert response.status_code == 422
    assert response.json()["error"]["message"] == f"unknown field {field!r}"


async def test_patch_with_an_unknown_field_changes_nothing(client: httpx.AsyncClient) -> None:
    user = utf8(uid())
    await client.post("/v1/sessions", json={"session_id": "s", "state": {"a": 1}}, headers=user)
    response = await client.patch("/v1/sessions/s", json={"stat": {"a": 2}}, headers=user)
    assert response.status_code == 422
    assert (await client.get("/v1/sessions/s", headers=user)).json()["state"] == {"a": 1}


async def test_the_openai_body_stays_tolerant_of_fields_it_does_not_use(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "model": "agent",
        "messages": [{"role": "user", "content": "hi"}],
        "user": uid(),
        "logit_bias": {},
        "some_future_field": True,
    }
    assert (await client.post("/v1/chat/completions", json=body)).status_code == 200


def test_ids_round_trip_through_a_real_server(opened: httpx.Client) -> None:
    """uvicorn with httptools: what its raw path and header bytes give the app."""
    for ident in ("team/alpha", "用户 %2F+", "x%y"):
        user = f"{uid()}/{ident}"
        created = opened.post(
            "/v1/chat", json={"message": "My name is Ann", "session_id": ident}, headers=utf8(user)
        )
        assert created.status_code == 200, created.text
        assert created.json()["user_id"] == user
        read = opened.get(f"/v1/sessions/{seg(ident)}", headers=percent(user))
        assert read.status_code == 200, read.text
        assert read.json()["message_count"] == 2
        erased = opened.delete(f"/v1/users/{seg(user)}")
        assert erased.json() == {"deleted": 1}
        assert opened.get(f"/v1/sessions/{seg(ident)}", headers=percent(user)).status_code == 404


async def test_id_routes_are_counted_by_their_template(client: httpx.AsyncClient) -> None:
    await client.get(f"/v1/sessions/{seg('a/b')}", headers=utf8(uid()))
    metrics = (await client.get("/metrics")).text
    assert 'route="/v1/sessions/{session_id}",status="404"' in metrics


@pytest.mark.parametrize("prefix_in_path", [True, False])
async def test_ids_with_slashes_under_a_root_path(prefix_in_path: bool) -> None:
    """Behind a proxy (``--root-path /agents``), passed on or stripped: still one segment."""
    app = make_app(
        Settings.load({"store": "memory://", "model": "offline", "root_path": "/agents"})
    )
    base = "/agents" if prefix_in_path else ""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        body = {"message": "hi", "user_id": "u/1", "session_id": "s/1 %"}
        assert (await api.post(f"{base}/v1/chat", json=body)).status_code == 200
        read = await api.get(f"{base}/v1/sessions/{seg('s/1 %')}", headers=utf8("u/1"))
        assert read.status_code == 200, read.text
        assert (read.json()["user_id"], read.json()["session_id"]) == ("u/1", "s/1 %")
        erased = await api.delete(f"{base}/v1/users/{seg('u/1')}")
        assert erased.json() == {"deleted": 1}
    await app.state.host.close()
