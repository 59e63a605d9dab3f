"""What the Host reports: a user's export and the host's statistics (read-only views)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agenthost.host import Host


async def export_user(host: Host, *, user_id: str, tenant_id: str) -> dict[str, Any]:
    """Everything stored about a user: sessions with messages, runs and summaries, and
    their memories."""
    records = await host.sessions(user_id=user_id, tenant_id=tenant_id)
    store = host.store
    sessions = []
    for record in records:
        messages = await store.messages(record.key)
        runs = await store.runs(record.key, limit=10_000)
        summaries = await store.summaries(record.key)
        sessions.append(
            {
                **record.to_dict(),
                "messages": [m.to_dict() for m in messages],
                "runs": [r.to_dict() for r in runs],
                "summaries": [s.to_dict() for s in summaries],
            }
        )
    memories = await host.memories.export(user_id=user_id, tenant_id=tenant_id)
    return {"tenant_id": tenant_id, "user_id": user_id, "sessions": sessions, "memories": memories}


async def stats(host: Host) -> dict[str, Any]:
    """The host's counters: sessions in the store and in memory, lifecycle, locks, agents."""
    cache = host.cache
    live = len(cache)
    active = cache.busy_count()
    sources = host.agents.tool_sources()
    return {
        "total_sessions": await host.store.count_sessions(),
        "live_sessions": live,
        "active_sessions": active,
        "idle_sessions": live - active,
        "max_live_sessions": cache.max_live,
        "session_ttl_seconds": cache.ttl,
        "cleanup_interval_seconds": host.cleanup_interval,
        "session_retention_seconds": host.session_retention,
        "evictions": cache.evictions,
        "expirations": cache.expirations,
        "retention_deleted": host.retention_deleted,
        "sweeps": host.sweeps,
        "locks_held": len(host.runtime.locks),
        "write_conflicts": host.runtime.conflicts,
        "policy": host.policy,
        "agents": host.agents.live_counts(cache),
        **({"mcp": {n: s.stats() for n, s in sources.items()}} if sources else {}),
        **host.upkeep.stats(),
    }
