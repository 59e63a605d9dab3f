"""``agenthost.live``: the live-session cache on its own: LRU within the cap, idle TTL,
busy sessions never evicted or expired, and the counters the admin stats show."""

from __future__ import annotations

from collections import deque

import pytest

from agenthost.keys import SessionKey
from agenthost.live import LiveSession, LiveSessionCache
from agenthost.messages import Message


def live(user: str, *, used: float = 0.0, tenant: str = "t") -> LiveSession:
    return LiveSession(
        key=SessionKey(tenant, user, "s"),
        window=deque(),
        last_seq=0,
        message_count=0,
        state={},
        config={},
        pending=[],
        created_at=used,
        last_used=used,
    )


def users(cache: LiveSessionCache) -> list[str]:
    return [s.key.user_id for s in cache]


def test_the_cap_evicts_the_least_recently_used() -> None:
    cache = LiveSessionCache(max_live=2, ttl=None)
    a, b, c = live("a"), live("b"), live("c")
    cache.put(a)
    cache.put(b)
    assert cache.get(a.key, now=1) is a  # a is now the most recent
    cache.put(c)
    assert users(cache) == ["a", "c"] and cache.evictions == 1
    assert cache.get(b.key, now=1) is None


def test_a_busy_session_is_never_evicted_and_rejoins_as_most_recent() -> None:
    cache = LiveSessionCache(max_live=2, ttl=None)
    a, b, c = live("a"), live("b"), live("c")
    cache.put(a)
    cache.put(b)
    cache.hold(a)  # the least recently used, but a turn runs on it
    cache.put(c)
    assert sorted(users(cache)) == ["a", "c"] and cache.evictions == 1  # b went, not a
    assert cache.busy_count() == 1
    assert cache.evict(a.key) is False  # an admin cannot evict a running turn's session
    cache.unhold(a)
    assert a.busy is False and cache.busy_count() == 0
    cache.put(live("d"))
    assert sorted(users(cache)) == ["a", "d"]  # c was older than a's release


def test_idle_sessions_expire_after_the_ttl_busy_ones_do_not() -> None:
    cache = LiveSessionCache(max_live=10, ttl=60)
    old, running, fresh = live("old", used=0), live("running", used=0), live("fresh", used=50)
    for session in (old, running, fresh):
        cache.put(session)
    cache.hold(running)
    assert cache.sweep(now=100) == 1
    assert sorted(users(cache)) == ["fresh", "running"] and cache.expirations == 1
    assert cache.get(fresh.key, now=111) is None  # expired on read as well
    assert cache.expirations == 2
    assert cache.get(running.key, now=10_000) is running


def test_without_a_ttl_nothing_expires() -> None:
    cache = LiveSessionCache(max_live=10, ttl=None)
    cache.put(live("a", used=0))
    assert cache.sweep(now=1e9) == 0 and len(cache) == 1


def test_put_replaces_the_copy_of_a_key() -> None:
    cache = LiveSessionCache(max_live=10, ttl=None)
    first, second = live("a"), live("a")
    cache.put(first)
    cache.hold(first)
    cache.put(second)  # a reloaded copy replaces the busy one
    assert len(cache) == 1 and cache.get(second.key, now=0) is second
    assert cache.busy_count() == 0


def test_discard_by_key_and_by_tenant_or_user() -> None:
    cache = LiveSessionCache(max_live=10, ttl=None)
    sessions = [live("a"), live("b"), live("a", tenant="u"), live("c", tenant="u")]
    for session in sessions:
        cache.put(session)
    cache.hold(sessions[1])
    assert cache.discard(sessions[1].key) is True and cache.discard(sessions[1].key) is False
    assert cache.discard_where(None, "a") == 2
    assert cache.discard_where("u", None) == 1
    assert len(cache) == 0


def test_info_and_append() -> None:
    session = live("a", used=5)
    session.append([Message(role="user", content="hi", seq=1)])
    session.append([Message(role="assistant", content="hello", seq=2)])
    assert (session.last_seq, session.message_count) == (2, 2)
    assert session.info() == {
        "tenant_id": "t",
        "user_id": "a",
        "session_id": "s",
        "created_at": 5,
        "last_used": 5,
        "busy": False,
        "messages_in_window": 2,
    }


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LiveSessionCache(max_live=0, ttl=None)
