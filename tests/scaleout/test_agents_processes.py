"""Hand-offs across real ``agenthost serve`` processes and restarts.

Three agents defined in ``agenthost.toml`` (no Python): triage hands off to
support or billing. Two users are handed off on one process and continue on the
other, which had cached their sessions from before the hand-off; then both
processes restart and each user is still with the agent they were handed to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from support.processes import ServeProcess, launch
from support.services import redis_url, unique, with_query

TEAM_TOML = """
default_agent = "triage"

[agents.triage]
model = "offline"
description = "Finds out what the user needs."
handoffs = ["support", "billing"]

[agents.support]
model = "offline"
description = "Technical help."

[agents.billing]
model = "offline"
description = "Invoices and payments."
"""


async def turn(
    client: httpx.AsyncClient, url: str, user: str, text: str, *, agent: str | None = None
) -> dict[str, Any]:
    path = "/v1/chat" if agent is None else f"/v1/agents/{agent}/chat"
    body = {"message": text, "user_id": user, "session_id": f"{user}-chat"}
    response = await client.post(url + path, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def session_agent(client: httpx.AsyncClient, url: str, user: str) -> tuple[str, str]:
    response = await client.get(f"{url}/v1/sessions/{user}-chat", headers={"X-User-Id": user})
    assert response.status_code == 200, response.text
    return response.json()["agent"], response.json()["entry_agent"]


async def test_hand_offs_hold_across_processes_and_restarts(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    (tmp_path / "agenthost.toml").write_text(TEAM_TOML)  # the processes' working directory
    coordination = with_query(redis_url(), prefix=unique("agents-lock"))
    one, two = await launch(servers, tmp_path, 2, "--store", pg_url, "--coordination", coordination)
    async with httpx.AsyncClient(timeout=60.0) as client:
        for user, name in (("alice", "Alice"), ("bob", "Bob")):
            assert (await turn(client, two.url, user, f"My name is {name}"))["agent"] == "triage"
            await turn(client, one.url, user, "hello")  # both processes cache the session

        moved = await turn(client, one.url, "alice", "/handoff billing")
        assert moved["agent"] == "billing"
        moved = await turn(client, two.url, "bob", "/handoff support")
        assert moved["agent"] == "support"

        # each continues on the other process, whose cached copy predates the hand-off
        alice = await turn(client, two.url, "alice", "What is my name?")
        assert (alice["agent"], alice["reply"]) == ("billing", "Your name is Alice.")
        bob = await turn(client, one.url, "bob", "What is my name?", agent="triage")
        assert (bob["agent"], bob["reply"]) == ("support", "Your name is Bob.")

        for process in (one, two):
            await process.stop()
            await process.start()

        alice = await turn(client, one.url, "alice", "What is my name?")
        assert (alice["agent"], alice["reply"]) == ("billing", "Your name is Alice.")
        bob = await turn(client, two.url, "bob", "What is my name?")
        assert (bob["agent"], bob["reply"]) == ("support", "Your name is Bob.")
        assert await session_agent(client, two.url, "alice") == ("billing", "triage")
        assert await session_agent(client, one.url, "bob") == ("support", "triage")

        refused = await client.post(
            f"{one.url}/v1/agents/billing/chat",
            json={"message": "hi", "user_id": "bob", "session_id": "bob-chat"},
        )
        assert refused.status_code == 409, refused.text
        messages = await client.get(
            f"{two.url}/v1/sessions/alice-chat/messages", headers={"X-User-Id": "alice"}
        )
        speakers = [(m["role"], m["meta"]["agent"]) for m in messages.json()["messages"]]
        assert speakers[-2:] == [("user", "billing"), ("assistant", "billing")]
        assert ("tool", "triage") in speakers  # the transfer, recorded
