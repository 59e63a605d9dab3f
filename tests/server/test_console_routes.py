"""The console's server side: pages and assets, ``GET /v1/config``, ``GET /v1/admin/series``."""

from __future__ import annotations

import httpx

from support.serve import bearer


async def test_pages_and_assets_are_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    for path, kind in (("/", "text/html"), ("/dashboard", "text/html")):
        page = await client.get(path)
        assert page.status_code == 200 and kind in page.headers["content-type"]
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
    script = await client.get("/console/playground.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "v1/chat" in script.text and "approvals" in script.text
    assert (await client.get("/console/console.css")).headers["content-type"].startswith("text/css")
    for missing in ("/console/nothing.js", "/console/index.html", "/console/..%2Fapp.py"):
        response = await client.get(missing)
        assert response.status_code in (404, 422), missing
        assert "error" in response.json()


async def test_config_lists_the_model_allow_list(client: httpx.AsyncClient) -> None:
    config = (await client.get("/v1/config")).json()
    assert config["auth"] == "none"
    assert config["default_model"] == "offline"
    assert config["models"] == ["offline"]
    assert "temperature" in config["config_keys"]


def test_config_needs_credentials_and_series_needs_an_admin(keyed: httpx.Client) -> None:
    assert keyed.get("/v1/config").status_code == 401
    models = keyed.get("/v1/config", headers=bearer("alice")).json()["models"]
    assert models == ["slow-when-asked", "offline"]  # the agent's model, then --models
    assert keyed.get("/v1/admin/series", headers=bearer("alice")).status_code == 403
    assert keyed.get("/v1/admin/series", headers=bearer("admin")).status_code == 200


def test_series_counts_turns_and_samples_the_session_gauges(opened: httpx.Client) -> None:
    def turns() -> int:
        return sum(p["turns"] for p in opened.get("/v1/admin/series").json()["points"])

    before = turns()
    opened.post("/v1/chat", json={"message": "hi", "user_id": "series-user"})
    series = opened.get("/v1/admin/series").json()
    assert series["bucket_seconds"] == 5.0
    assert len(series["points"]) == 120
    assert sum(p["turns"] for p in series["points"]) == before + 1
    last = series["points"][-1]
    assert last["live_sessions"] is not None and last["live_sessions"] >= 1
    assert any(p["latency_p50_ms"] is not None for p in series["points"])
