"""``agenthost.reports``: a user's export (sessions with messages and runs, memories; nobody
else's) and the host's statistics, on a Host over each embedded store."""

from __future__ import annotations

from agenthost import Host


async def test_the_export_has_the_users_sessions_runs_and_memories_only(host: Host) -> None:
    await host.run("My name is Alice", user_id="alice", session_id="s1")
    await host.run("What is my name?", user_id="alice", session_id="s2")
    await host.run("My name is Bob", user_id="bob", session_id="s1")
    await host.memories.add("likes tea", user_id="alice")

    export = await host.export_user(user_id="alice", tenant_id="default")
    assert (export["tenant_id"], export["user_id"]) == ("default", "alice")
    sessions = {s["session_id"]: s for s in export["sessions"]}
    assert set(sessions) == {"s1", "s2"}
    assert [m["content"] for m in sessions["s1"]["messages"]] == [
        "My name is Alice",
        "Nice to meet you, Alice!",
    ]
    assert [r["status"] for r in sessions["s2"]["runs"]] == ["completed"]
    assert sessions["s1"]["summaries"] == []
    assert [m["text"] for m in export["memories"]] == ["likes tea"]
    assert "Bob" not in repr(export)

    nobody = await host.export_user(user_id="carol", tenant_id="default")
    assert nobody["sessions"] == [] and nobody["memories"] == []


async def test_stats_count_sessions_in_the_store_and_in_memory(host: Host) -> None:
    before = await host.stats()
    assert before["total_sessions"] == 0 and before["live_sessions"] == 0
    await host.run("hi", user_id="u", session_id="a")
    await host.run("hi", user_id="u", session_id="b")
    stats = await host.stats()
    assert (stats["total_sessions"], stats["live_sessions"]) == (2, 2)
    assert (stats["active_sessions"], stats["idle_sessions"]) == (0, 2)
    assert stats["locks_held"] == 0 and stats["write_conflicts"] == 0
    assert stats["max_live_sessions"] == host.cache.max_live
    assert stats["policy"] == host.policy
    assert "mcp" not in stats  # no tool sources on this agent
    await host.clear(user_id="u", session_id="a")
    assert (await host.stats())["total_sessions"] == 1
