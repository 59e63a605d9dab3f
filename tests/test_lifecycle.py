"""Live-session lifecycle: cap and LRU, TTL, sweeper, retention, per-session config, approvals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agenthost import (
    ALL_SESSIONS,
    Agent,
    Conflict,
    FunctionModel,
    Host,
    InvalidInput,
    ModelRequest,
    NotFound,
    SQLiteStore,
    tool,
)
from agenthost.keys import SessionKey
from agenthost.stores.base import RunRecord
from support.clock import FakeClock


def key(user: str, session: str = "default") -> SessionKey:
    return SessionKey("default", user, session)


def live_users(host: Host) -> list[str]:
    return [s["user_id"] for s in host.live_sessions()]


async def test_cap_evicts_least_recently_used_first(tmp_path: Path, clock: FakeClock) -> None:
    async with Host(
        Agent(), store=SQLiteStore(tmp_path / "c.db"), max_live_sessions=3, clock=clock
    ) as host:
        for user in ("a", "b", "c"):
            await host.run(f"My name is {user.upper()}", user_id=user)
            clock.advance(1)
        await host.run("touch", user_id="a")  # a becomes most recent; b is now the oldest
        await host.run("hi", user_id="d")
        assert live_users(host) == ["c", "a", "d"]
        assert (await host.stats())["evictions"] == 1
        reply = await host.run("What is my name?", user_id="b")  # transparent reload
        assert reply.reply == "Your name is B."
        assert live_users(host) == ["a", "d", "b"]
        assert await host.size(user_id="b", session_id=ALL_SESSIONS) == 4


async def test_ttl_expiry_and_transparent_reload(tmp_path: Path, clock: FakeClock) -> None:
    async with Host(
        Agent(), store=SQLiteStore(tmp_path / "t.db"), session_ttl=60, clock=clock
    ) as host:
        await host.run("My name is Alice", user_id="alice")
        await host.run("My name is Bob", user_id="bob")
        clock.advance(45)
        await host.run("still here", user_id="bob")
        clock.advance(30)  # alice idle 75s > ttl, bob idle 30s
        result = await host.cleanup()
        assert result["expired"] == 1
        assert live_users(host) == ["bob"]
        stats = await host.stats()
        assert stats["expirations"] == 1 and stats["total_sessions"] == 2
        reply = await host.run("What is my name?", user_id="alice")
        assert reply.reply == "Your name is Alice."
        assert [m.role for m in await host.history(user_id="alice")] == ["user", "assistant"] * 2


async def test_busy_session_is_never_evicted_or_expired(clock: FakeClock) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def model(request: ModelRequest) -> str:
        if request.messages[-1].content == "slow":
            started.set()
            await gate.wait()
        return "ok"

    async with Host(
        Agent(model=FunctionModel(model)), max_live_sessions=1, session_ttl=10, clock=clock
    ) as host:
        slow = asyncio.create_task(host.run("slow", user_id="busy"))
        await started.wait()
        clock.advance(100)
        assert (await host.cleanup())["expired"] == 0
        await host.run("fast", user_id="other")  # cap 1: must evict someone, never "busy"
        assert "busy" in live_users(host)
        assert not host.evict(user_id="busy", session_id="default")
        stats = await host.stats()
        assert stats["active_sessions"] == 1
        gate.set()
        assert (await slow).reply == "ok"
        assert host.evict(user_id="busy", session_id="default")


class ManualSleep:
    """An injectable sleep: the sweeper waits here until the test lets time pass."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.requests.put((seconds, future))
        await future

    async def elapse(self) -> float:
        """Let the pending sleep finish (advancing the clock), then wait for the next sleep."""
        seconds, future = await self.requests.get()
        self.clock.advance(seconds)
        future.set_result(None)
        next_seconds, next_future = await self.requests.get()  # the sweep ran; sleeping again
        self.requests.put_nowait((next_seconds, next_future))
        return seconds


async def test_sweeper_runs_on_its_interval(clock: FakeClock) -> None:
    sleep = ManualSleep(clock)
    async with Host(Agent(), session_ttl=60, cleanup_interval=30, clock=clock, sleep=sleep) as host:
        await host.run("hi", user_id="u")
        assert await sleep.elapse() == 30
        assert host.sweeps == 1 and live_users(host) == ["u"]
        await sleep.elapse()  # t=60: idle exactly ttl, not over it
        assert host.sweeps == 2 and live_users(host) == ["u"]
        await sleep.elapse()  # t=90
        assert host.sweeps == 3 and live_users(host) == []
        assert (await host.stats())["cleanup_interval_seconds"] == 30


async def test_retention_deletes_only_old_sessions(tmp_path: Path, clock: FakeClock) -> None:
    async with Host(
        Agent(),
        store=SQLiteStore(tmp_path / "r.db"),
        session_retention=1000,
        cleanup_interval=None,
        clock=clock,
    ) as host:
        for i in range(150):
            await host.run("old", user_id=f"old-{i}")
        clock.advance(900)
        await host.run("new", user_id="new")
        await host.run("refresh", user_id="old-0")  # used recently: kept
        clock.advance(200)
        result = await host.cleanup()
        assert result["deleted"] == 149
        remaining = {r.key.user_id for r in await host.sessions(tenant_id="default")}
        assert remaining == {"new", "old-0"}
        assert await host.size(user_id="old-5", session_id=ALL_SESSIONS) == 0
        assert await host.size(user_id="old-0", session_id=ALL_SESSIONS) == 4


async def test_per_session_config_round_trip_and_allow_list(tmp_path: Path) -> None:
    seen: list[tuple[str, float | None]] = []

    def make(name: str) -> FunctionModel:
        def reply(request: ModelRequest) -> str:
            seen.append((name, request.settings.temperature))
            return name

        return FunctionModel(reply, model_name=name)

    fast, careful = make("fast"), make("careful")
    path = tmp_path / "cfg.db"
    async with Host(Agent(model=fast), store=SQLiteStore(path), models=[careful]) as host:
        record = await host.update_session(
            user_id="u1", config={"model": "careful", "temperature": 0.2}, create=True
        )
        assert record.config == {"model": "careful", "temperature": 0.2}
        assert (await host.run("hi", user_id="u1")).reply == "careful"
        assert (await host.run("hi", user_id="u2")).reply == "fast"
        with pytest.raises(InvalidInput, match="not allowed") as caught:
            await host.update_session(user_id="u1", config={"model": "gpt-9"})
        assert caught.value.field == "config.model"
        with pytest.raises(InvalidInput, match="between"):
            await host.run("x", user_id="u1", config={"temperature": 7})
        with pytest.raises(InvalidInput, match="unknown config key"):
            await host.run("x", user_id="u1", config={"colour": "red"})
        # config given with a chat turn is merged and persists
        await host.run("hi", user_id="u2", config={"model": "careful"})
    async with Host(Agent(model=fast), store=SQLiteStore(path), models=[careful]) as host:
        assert (await host.run("after restart", user_id="u1")).reply == "careful"
        assert (await host.run("after restart", user_id="u2")).reply == "careful"
        reset = await host.update_session(user_id="u1", config={"model": None})
        assert reset.config == {"temperature": 0.2}
        assert (await host.run("reset", user_id="u1")).reply == "fast"
    assert seen[0] == ("careful", 0.2)
    assert ("fast", None) in seen


deleted: list[str] = []


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file (needs a human's approval)."""
    deleted.append(path)
    return f"deleted {path}"


async def test_approval_pauses_survives_restart_and_resumes(tmp_path: Path) -> None:
    deleted.clear()
    path = tmp_path / "approve.db"
    agent = Agent(tools=(delete_file,))
    async with Host(agent, store=SQLiteStore(path)) as host:
        paused = await host.run('/tool delete_file {"path": "/tmp/x"}', user_id="alice")
        assert paused.status == "awaiting_approval"
        [call] = paused.approvals
        assert call.name == "delete_file" and '"/tmp/x"' in call.arguments
        assert deleted == []
        with pytest.raises(Conflict, match="waiting for approval"):
            await host.run("something else", user_id="alice")
        run = await host.store.get_run(paused.run_id)
        assert run is not None and run.status == "awaiting_approval"
    async with Host(agent, store=SQLiteStore(path)) as host:  # restart between pause and answer
        with pytest.raises(NotFound):
            await host.approve(call.id, True, user_id="mallory")
        record = await host.get_session(user_id="alice")
        assert record is not None and record.pending[0].call_id == call.id
        done = await host.approve(call.id, True, user_id="alice")
        assert done.status == "completed" and done.run_id == paused.run_id
        assert done.reply == "delete_file returned: deleted /tmp/x"
        assert deleted == ["/tmp/x"]
        roles = [m.role for m in await host.history(user_id="alice")]
        assert roles == ["user", "assistant", "tool", "assistant"]
        run = await host.store.get_run(paused.run_id)
        assert isinstance(run, RunRecord) and run.status == "completed"
        with pytest.raises(NotFound):
            await host.approve(call.id, True, user_id="alice")


async def test_denied_approval_tells_the_model() -> None:
    deleted.clear()
    async with Host(Agent(tools=(delete_file,))) as host:
        paused = await host.run('/tool delete_file {"path": "/etc"}', user_id="u")
        done = await host.approve(paused.approvals[0].id, False, user_id="u")
        assert deleted == []
        assert "denied" in done.reply
        history = await host.history(user_id="u")
        assert history[2].role == "tool" and history[2].content.startswith("denied")
        assert (await host.run("next", user_id="u")).reply == "You said: next"
