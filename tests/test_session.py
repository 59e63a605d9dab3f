"""The session runtime: every write checked at the store, erasure final, faults healed.

Two Hosts over one store stand in for two processes: each keeps its own cached
copies, as a process does, and only the store is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agenthost import Agent, Host, MemoryStore, SQLiteStore
from agenthost.errors import NotFound, SessionErased, StoreUnavailable
from agenthost.keys import SessionKey
from agenthost.models import FunctionModel, ModelRequest
from agenthost.stores.base import SessionStore, WriteBatch


@pytest.fixture(params=["memory", "sqlite"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A factory of store objects over one set of data (a new one per 'process')."""
    if request.param == "memory":
        store = MemoryStore(max_messages=None)
        return lambda: store
    return lambda: SQLiteStore(tmp_path / "shared.db")


@pytest.fixture
async def two_hosts(shared_store: object) -> AsyncIterator[tuple[Host, Host]]:
    make = shared_store
    agent = Agent(name="a", model="offline")
    async with Host(agent, store=make()) as a, Host(agent, store=make()) as b:  # type: ignore[operator]
        yield a, b


async def test_state_patches_through_two_copies_all_survive(two_hosts: tuple[Host, Host]) -> None:
    a, b = two_hosts
    await a.run("hello", user_id="u")  # both now cache the session
    await b.run("hello again", user_id="u")
    for i in range(20):
        host = (a, b)[i % 2]
        await host.update_state({f"k{i}": i}, user_id="u")
    assert await a.get_state(user_id="u") == {f"k{i}": i for i in range(20)}
    await a.update_state({"k3": None}, user_id="u")  # merge-patch deletion still works
    state = await b.update_state({"k4": "four"}, user_id="u")
    assert "k3" not in state and state["k4"] == "four" and len(state) == 19


async def test_config_set_on_one_copy_survives_a_turn_on_the_other(
    two_hosts: tuple[Host, Host],
) -> None:
    a, b = two_hosts
    await b.run("hi", user_id="u")
    await a.update_session(user_id="u", config={"temperature": 0.3})
    await b.run("and again", user_id="u")  # b's cached copy predates the config
    record = await a.get_session(user_id="u")
    assert record is not None and record.config == {"temperature": 0.3}
    assert record.message_count == 4
    assert [m.role for m in await a.history(user_id="u")] == ["user", "assistant"] * 2


async def test_a_turn_on_a_stale_copy_sees_the_other_copys_history(
    two_hosts: tuple[Host, Host],
) -> None:
    a, b = two_hosts
    await a.run("My name is Alice", user_id="u")
    await a.run("What is my name?", user_id="u")  # a caches the session
    await b.run("My name is Bob", user_id="u")
    result = await a.run("What is my name?", user_id="u")
    assert result.reply == "Your name is Bob."  # a reloaded before calling the model
    seqs = [m.seq for m in await b.history(user_id="u")]
    assert seqs == list(range(1, 9))


async def test_erased_user_is_not_written_back_by_a_stale_copy(
    two_hosts: tuple[Host, Host],
) -> None:
    a, b = two_hosts
    await a.run("My name is Erin", user_id="erin")
    await a.update_state({"secret": 42}, user_id="erin")
    await a.run("hi", user_id="erin", session_id="second")
    assert await b.erase_user(user_id="erin") == 2
    with pytest.raises(NotFound):
        await a.update_session(user_id="erin", state={"more": 1})
    assert (await a.export_user(user_id="erin"))["sessions"] == []
    # a new turn is a new conversation: nothing erased comes back with it
    result = await a.run("What is my name?", user_id="erin")
    assert result.reply != "Your name is Erin."
    exported = await b.export_user(user_id="erin")
    [session] = exported["sessions"]
    assert session["state"] == {}
    assert session["messages"][0]["content"] == "What is my name?"
    assert len(session["messages"]) == 2


class Gate:
    """A model that waits, mid-turn, until the test lets it answer."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: ModelRequest) -> str:
        self.called.set()
        await self.release.wait()
        return "done"


@pytest.mark.parametrize("scope", ["session", "user"])
async def test_erase_during_a_turn_fences_the_turn(scope: str, tmp_path: Path) -> None:
    gate = Gate()
    agent = Agent(name="a", model=FunctionModel(gate))
    async with Host(agent, store=SQLiteStore(tmp_path / "x.db")) as host:
        await host.update_state({"keep": "no"}, user_id="u", session_id="s")
        turn = asyncio.create_task(host.run("hello", user_id="u", session_id="s"))
        await gate.called.wait()  # the user's message is stored; the model is thinking
        if scope == "session":
            assert await host.clear(user_id="u", session_id="s") == 1
        else:
            assert await host.erase_user(user_id="u") == 1
        gate.release.set()
        with pytest.raises(SessionErased, match="erased"):
            await turn
        assert await host.get_session(user_id="u", session_id="s") is None
        assert (await host.export_user(user_id="u"))["sessions"] == []
        assert host.live_count == 0
        # the key is usable again, from scratch
        gate.called.clear()
        result = await host.run("again", user_id="u", session_id="s")
        assert result.reply == "done"
        assert [m.content for m in await host.history(user_id="u", session_id="s")] == [
            "again",
            "done",
        ]


class Faulty:
    """A store that fails the writes the test asks it to (a store outage, in one process)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.fail_from = 10**9
        self.writes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def write(self, batch: WriteBatch) -> None:
        self.writes += 1
        if self.writes >= self.fail_from:
            raise StoreUnavailable("the store is down (test)")
        await self.inner.write(batch)


async def test_a_store_fault_mid_turn_heals_on_the_next_turn(tmp_path: Path) -> None:
    gate = Gate()
    faulty = Faulty(SQLiteStore(tmp_path / "f.db"))
    agent = Agent(name="a", model=FunctionModel(gate))
    async with Host(agent, store=faulty) as host:  # type: ignore[arg-type]
        gate.release.set()
        await host.run("first", user_id="u")
        gate.release.clear()
        gate.called.clear()
        turn = asyncio.create_task(host.run("second", user_id="u"))
        await gate.called.wait()  # "second" is stored, its run is running
        faulty.fail_from = faulty.writes + 1  # the reply and the closing write both fail
        gate.release.set()
        with pytest.raises(StoreUnavailable):
            await turn
        failed_run = (await host.runs(user_id="u"))[0]
        assert failed_run.status == "running"  # what the store was left with
        faulty.fail_from = 10**9  # the store is back
        result = await host.run("third", user_id="u")
        assert result.reply == "done"
        history = await host.history(user_id="u")
        assert [m.role for m in history] == ["user", "assistant"] * 3
        assert [m.content for m in history[::2]] == ["first", "second", "third"]
        assert history[3].meta is not None and history[3].meta["status"] == "interrupted"
        run = await host.get_run(failed_run.run_id)
        assert run is not None and run.status == "interrupted"


# -- a stale copy catches up by what it lacks (stores with load_after) ------------------


async def test_a_stale_copy_catches_up_by_the_messages_it_lacks(
    two_hosts: tuple[Host, Host],
) -> None:
    a, b = two_hosts
    await a.run("My name is Alice", user_id="u")
    for turn in range(3):  # a's copy falls behind each time b speaks
        await b.run(f"My name is Bob{turn}", user_id="u")
        result = await a.run("What is my name?", user_id="u")
        assert result.reply == f"Your name is Bob{turn}."
    assert a.runtime.delta_loads >= 2  # the first reload reads it all: a made the session
    stored = [m.to_dict() for m in await a.history(user_id="u", limit=1000)]
    live = a.runtime.cache.get(SessionKey("default", "u", "default"), a.clock())
    assert live is not None
    assert [m.to_dict() for m in live.window] == stored[-len(live.window) :]
    assert live.last_seq == len(stored) == 14


async def test_a_copy_further_behind_than_a_window_takes_the_newest_window(
    shared_store: object,
) -> None:
    make = shared_store
    agent = Agent(name="a", model="offline", history_window=4)
    async with Host(agent, store=make()) as a, Host(agent, store=make()) as b:  # type: ignore[operator]
        await a.run("hi", user_id="u")
        await b.run("hi", user_id="u")
        await a.run("My name is Ann", user_id="u")  # a reloads: now it has the row's time
        for turn in range(6):  # twelve messages: more than a's window
            await b.run(f"turn {turn}", user_id="u")
        result = await a.run("What is my name?", user_id="u")
        assert result.reply == "I don't know your name yet."  # Ann fell out of the window
        live = a.runtime.cache.get(SessionKey("default", "u", "default"), a.clock())
        assert live is not None
        stored = await a.history(user_id="u", limit=1000)
        assert [m.seq for m in live.window] == [m.seq for m in stored][-len(live.window) :]


async def test_a_copy_of_an_erased_and_remade_session_is_read_afresh(
    two_hosts: tuple[Host, Host],
) -> None:
    """The remade session has messages after the copy's last seq (3, 4 after 2), but they
    continue another session: the erased turns must not come back into the window."""
    a, b = two_hosts
    await a.run("My name is Alice", user_id="u")  # a's copy: seqs 1-2
    await b.erase_user(user_id="u")
    await b.run("hello", user_id="u")
    await b.run("how are you?", user_id="u")  # seqs 1-4 of a new session
    result = await a.run("What is my name?", user_id="u")
    assert result.reply == "I don't know your name yet."
    assert [m.seq for m in await a.history(user_id="u")] == list(range(1, 7))
