"""The memory routes and the session summary over HTTP (in-process app, --auth none)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from serverkit import make_app

from agenthost.settings import Settings
from support.agents import MEMORY_AGENT

ALICE = {"X-User-Id": "alice"}


@pytest.fixture
async def memory_client() -> AsyncIterator[httpx.AsyncClient]:
    """An app serving the memory agent (compaction, extraction) on a memory store."""
    app = make_app(Settings.load({"store": "memory://", "agent": MEMORY_AGENT}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.host.close()


async def test_create_read_page_search_patch_delete(client: httpx.AsyncClient) -> None:
    created = []
    for text in ("Alice prefers tea", "Alice lives in Lyon", "Alice has a cat called Tom"):
        response = await client.post("/v1/memories", json={"text": text}, headers=ALICE)
        assert response.status_code == 201, response.text
        created.append(response.json())
    first = created[0]
    assert first["id"].startswith("mem_") and first["user_id"] == "alice"
    assert (first["kind"], first["tags"], first["session_id"], first["run_id"]) == (
        None,
        [],
        None,
        None,
    )
    assert (await client.get(f"/v1/memories/{first['id']}", headers=ALICE)).json() == first

    page = (await client.get("/v1/memories?limit=2", headers=ALICE)).json()
    assert [m["text"] for m in page["memories"]] == [
        "Alice has a cat called Tom",
        "Alice lives in Lyon",
    ]
    assert (page["limit"], page["offset"], page["next_offset"]) == (2, 0, 2)
    rest = (await client.get("/v1/memories?limit=2&offset=2", headers=ALICE)).json()
    assert [m["text"] for m in rest["memories"]] == ["Alice prefers tea"]
    assert rest["next_offset"] is None
    found = await client.get("/v1/memories", params={"q": "where does she live"}, headers=ALICE)
    assert [m["text"] for m in found.json()["memories"]] == ["Alice lives in Lyon"]

    path = f"/v1/memories/{first['id']}"
    body = {"text": "Alice prefers coffee", "kind": "preference", "revision": first["revision"]}
    changed = (await client.patch(path, json=body, headers=ALICE)).json()
    assert (changed["text"], changed["kind"]) == ("Alice prefers coffee", "preference")
    stale = await client.patch(
        path, json={"text": "x", "revision": first["revision"]}, headers=ALICE
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"
    cleared = (await client.patch(path, json={"kind": None}, headers=ALICE)).json()
    assert (cleared["text"], cleared["kind"]) == ("Alice prefers coffee", None)
    untouched = (await client.patch(path, json={}, headers=ALICE)).json()
    assert untouched["text"] == "Alice prefers coffee"

    assert (await client.delete(path, headers=ALICE)).json() == {"deleted": 1}
    gone = await client.delete(path, headers=ALICE)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert (await client.get(path, headers=ALICE)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/memories", {"text": ""}, 422),
        ("POST", "/v1/memories", {"text": "   "}, 422),
        ("POST", "/v1/memories", {"text": "x" * 4001}, 422),
        ("POST", "/v1/memories", {"text": "nul \u0000 inside"}, 422),
        ("POST", "/v1/memories", {"text": "ok", "kind": "bad\nkind"}, 422),
        ("POST", "/v1/memories", {"text": "ok", "tags": ["t"] * 21}, 422),
        ("POST", "/v1/memories", {"text": "ok", "session_id": ""}, 422),
        ("POST", "/v1/memories", {"kind": "no text"}, 422),
        ("PATCH", "/v1/memories/mem_missing", {"text": "x"}, 404),
        ("PATCH", "/v1/memories/mem_missing", {"revision": -1}, 422),
        ("GET", "/v1/memories/" + "m" * 256, None, 422),
        ("GET", "/v1/memories?q=", None, 422),
        ("GET", "/v1/memories?limit=0", None, 422),
    ],
)
async def test_bad_requests_get_clear_errors(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int
) -> None:
    response = await client.request(method, path, json=body, headers=ALICE)
    assert response.status_code == status, response.text
    assert {"code", "message"} <= set(response.json()["error"])


async def test_a_caller_without_a_user_gets_no_shared_bucket(client: httpx.AsyncClient) -> None:
    for method, path, body in (
        ("GET", "/v1/memories", None),
        ("POST", "/v1/memories", {"text": "whose is this?"}),
        ("GET", "/v1/memories/mem_x", None),
    ):
        response = await client.request(method, path, json=body)
        assert response.status_code == 422, response.text
        assert "named user" in response.json()["error"]["message"]
    export = await client.get("/v1/users/default/export")
    assert export.json()["memories"] == []


async def test_a_session_shows_its_summary_and_the_metrics_count_compactions(
    memory_client: httpx.AsyncClient,
) -> None:
    client = memory_client
    for text in ["My name is Alice"] + [f"small talk {i}" for i in range(6)]:
        body = {"message": text, "session_id": "long"}
        assert (await client.post("/v1/chat", json=body, headers=ALICE)).status_code == 200
    await client.app.state.host.upkeep.drain()  # type: ignore[attr-defined]
    session = (await client.get("/v1/sessions/long", headers=ALICE)).json()
    summary = session["summary"]
    assert summary["version"] >= 1 and summary["from_seq"] == 1
    assert summary["to_seq"] >= 14 - 8 and summary["error"] is None
    assert summary["model"] == "offline"
    assert "The user's name is Alice." in summary["text"]
    listed = (await client.get("/v1/sessions", headers=ALICE)).json()["sessions"]
    assert listed[0]["summary"] is None  # listings leave summaries out
    memories = (await client.get("/v1/memories", headers=ALICE)).json()["memories"]
    assert [m["text"] for m in memories] == ["The user's name is Alice."]
    assert memories[0]["session_id"] == "long" and memories[0]["tags"] == ["extracted"]
    export = (await client.get("/v1/users/alice/export", headers=ALICE)).json()
    assert export["memories"] == memories
    assert export["sessions"][0]["summaries"][-1] == summary
    metrics = (await client.get("/metrics")).text
    assert 'agenthost_compactions_total{status="completed"}' in metrics
    stats = (await client.get("/v1/admin/stats")).json()
    assert stats["compactions"] >= 1 and stats["memories_extracted"] == 1
