"""``GET /v1/usage`` over HTTP in api-keys mode: whose usage each caller may read.

The callers of the other auth matrices: the owner (alice@acme), another user of the
same tenant (bob@acme), a user of another tenant also called alice (eve's key,
alice@other), a service key of acme, an admin key of acme, and no credentials. An
admin reads any tenant and user through ``/v1/usage`` as through ``/v1/admin/usage``
(one implementation); anyone else naming another user or tenant gets 403, never
silently their own usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from serverkit import make_app

from agenthost.settings import Settings
from support.serve import API_KEYS, bearer

TURNS = {"alice": 1, "bob": 2, "eve": 3}  # eve's key is user alice of tenant other
SERVED = 4  # turns a service key runs for carol@acme


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """An app with metered usage: alice 1 turn, bob 2, alice@other 3, carol@acme 4."""
    app = make_app(Settings.load({"store": "memory://", "auth": "api-keys", "api_keys": API_KEYS}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://usage.test") as client,
    ):
        for key, turns in TURNS.items():
            for n in range(turns):
                reply = await client.post(
                    "/v1/chat", json={"message": f"hi {n}"}, headers=bearer(key)
                )
                assert reply.status_code == 200, reply.text
        for n in range(SERVED):
            body = {"message": f"hello {n}", "user_id": "carol"}
            reply = await client.post("/v1/chat", json=body, headers=bearer("service"))
            assert reply.status_code == 200, reply.text
        yield client


async def usage(
    http: httpx.AsyncClient, caller: str | None, path: str = "/v1/usage", **params: str
) -> httpx.Response:
    headers: dict[str, str] = {}
    if caller is not None:
        name, _, named = caller.partition("@")  # "service@alice": the service names alice
        headers = {**bearer(name), **({"X-User-Id": named} if named else {})}
    return await http.get(path, params=params, headers=headers)


async def read(http: httpx.AsyncClient, caller: str | None, **params: str) -> dict[str, Any]:
    response = await usage(http, caller, **params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def whose(report: dict[str, Any]) -> tuple[str | None, str | None, int]:
    return report["tenant_id"], report["user_id"], report["totals"]["turns"]


async def test_a_user_reads_its_own_usage_and_nobody_elses(http: httpx.AsyncClient) -> None:
    assert whose(await read(http, "alice")) == ("acme", "alice", 1)
    assert whose(await read(http, "alice", user_id="alice", tenant_id="acme")) == (
        "acme",
        "alice",
        1,
    )
    assert whose(await read(http, "bob")) == ("acme", "bob", 2)
    assert whose(await read(http, "eve")) == ("other", "alice", 3)  # the other tenant's alice
    for caller, params in (
        ("alice", {"user_id": "bob"}),
        ("bob", {"user_id": "alice"}),
        ("alice", {"tenant_id": "other"}),
        ("eve", {"tenant_id": "acme"}),
        ("eve", {"tenant_id": "acme", "user_id": "alice"}),
    ):
        refused = await usage(http, caller, **params)
        assert refused.status_code == 403, (caller, params, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
    for group in ("user_id", "tenant_id"):  # grouping by people is an admin's
        bad = await usage(http, "alice", group_by=group)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert (await usage(http, None)).status_code == 401
    assert (await usage(http, "alice", "/v1/admin/usage")).status_code == 403


async def test_a_service_reads_the_user_it_names_in_its_tenant(http: httpx.AsyncClient) -> None:
    assert whose(await read(http, "service@carol")) == ("acme", "carol", SERVED)
    assert whose(await read(http, "service", user_id="alice")) == ("acme", "alice", 1)
    unnamed = await usage(http, "service")
    assert unnamed.status_code == 422 and unnamed.json()["error"]["code"] == "invalid_input"
    other = await usage(http, "service", user_id="alice", tenant_id="other")
    assert other.status_code == 403
    mixed = await usage(http, "service@carol", user_id="alice")
    assert mixed.status_code == 422  # the header and the query name different users


async def test_an_admin_reads_any_tenant_and_user_grouped(http: httpx.AsyncClient) -> None:
    everyone = await read(http, "admin", group_by="tenant_id,user_id")
    assert whose(everyone) == (None, None, sum(TURNS.values()) + SERVED)
    assert [(g["tenant_id"], g["user_id"], g["turns"]) for g in everyone["groups"]] == [
        ("acme", "alice", 1),
        ("acme", "bob", 2),
        ("acme", "carol", SERVED),
        ("other", "alice", 3),
    ]
    assert whose(await read(http, "admin", tenant_id="other")) == ("other", None, 3)
    assert whose(await read(http, "admin", user_id="alice")) == (None, "alice", 1 + 3)
    assert whose(await read(http, "admin", tenant_id="acme", user_id="alice")) == (
        "acme",
        "alice",
        1,
    )
    assert whose(await read(http, "admin@bob")) == ("acme", "bob", 2)
    assert whose(await read(http, "admin", tenant_id="other", user_id="alice")) == (
        "other",
        "alice",
        3,
    )
    default = await read(http, "admin")
    assert default["group_by"] == ["day"] and len(default["groups"]) == 1
    for params in ({}, {"tenant_id": "acme", "group_by": "user_id,agent"}, {"user_id": "bob"}):
        legacy = await usage(http, "admin", "/v1/admin/usage", **params)
        assert legacy.status_code == 200, legacy.text
        same = await read(http, "admin", **{"group_by": "tenant_id", **params})
        assert legacy.json() == same  # one implementation
    for caller, params in (("admin", {"group_by": "colour"}), ("admin@bob", {"user_id": "alice"})):
        bad = await usage(http, caller, **params)
        assert bad.status_code == 422, bad.text
