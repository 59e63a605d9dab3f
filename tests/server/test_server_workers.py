"""``agenthost serve --workers N``: worker processes get the parent's effective settings."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from support.serve import KEYS, Server, bearer, uid


def test_two_workers_share_settings_and_store(tmp_path: Path) -> None:
    config = tmp_path / "agenthost.toml"
    config.write_text(f'auth = "api-keys"\n[api_keys]\n"{KEYS["alice"]}" = "acme:alice"\n')
    args = ["--workers", "2", "--config", str(config), "--max-body-bytes", "300"]
    args += ["--store", f"sqlite:///{tmp_path / 'workers.db'}"]
    with (
        Server(args, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, headers=bearer("alice"), timeout=30) as client,
    ):
        session = uid("w")
        for n in range(6):  # new connections: spread over both workers
            body = {"message": f"My name is N{n}", "session_id": session}
            response = client.post("/v1/chat", json=body, headers={"Connection": "close"})
            assert response.status_code == 200, response.text
        page = client.get(f"/v1/sessions/{session}/messages").json()
        assert [m["seq"] for m in page["messages"]] == list(range(1, 13))
        assert client.get("/v1/sessions", headers={"Authorization": ""}).status_code == 401
        big = {"message": "x" * 400}
        assert client.post("/v1/chat", json=big).status_code == 413  # a flag-only setting
    logs = server.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(line["message"] == "settings" for line in lines)  # logged, keys masked
    assert KEYS["alice"] not in logs
