"""The Host on the embedded stores: isolation, ordering, durability, history window."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agenthost import (
    ALL_SESSIONS,
    Agent,
    FunctionModel,
    Host,
    InvalidId,
    InvalidInput,
    MemoryStore,
    ModelError,
    ModelReply,
    ModelRequest,
    SessionBusy,
    SQLiteStore,
)
from agenthost.events import Delta, Done, ErrorEvent
from agenthost.keys import SessionKey


async def test_seed_scenario_alice_and_bob_interleaved(host: Host) -> None:
    await host.run("My name is Alice", user_id="alice")
    await host.run("我叫 Bob", user_id="bob")
    alice = await host.run("What is my name?", user_id="alice")
    bob = await host.run("我叫什么?", user_id="bob")
    assert "Alice" in alice.reply and "Bob" not in alice.reply
    assert bob.reply == "你的名字是 Bob"
    stranger = await host.run("What is my name?", user_id="carol")
    assert "Alice" not in stranger.reply and "Bob" not in stranger.reply


async def test_same_session_id_for_two_users_is_two_sessions(host: Host) -> None:
    await host.run("My name is Alice", user_id="alice", session_id="s1")
    reply = await host.run("What is my name?", user_id="bob", session_id="s1")
    assert "Alice" not in reply.reply
    other_tenant = await host.run(
        "What is my name?", user_id="alice", session_id="s1", tenant_id="acme"
    )
    assert "Alice" not in other_tenant.reply


async def test_run_result_fields(host: Host) -> None:
    result = await host.run("hello", user_id="u", session_id="s")
    assert result.reply == "You said: hello"
    assert (result.user_id, result.session_id, result.tenant_id) == ("u", "s", "default")
    assert result.run_id.startswith("run_")
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.status == "completed"


async def test_defaults_are_default_ids(host: Host) -> None:
    await host.run("hi")
    assert await host.size(user_id="default", session_id="default") == 2
    assert [m.role for m in await host.history()] == ["user", "assistant"]


async def test_ten_users_hundred_concurrent_turns_each(host: Host) -> None:
    users = [f"user-{i}" for i in range(10)]
    await asyncio.gather(
        *(host.run(f"message {u} #{n}", user_id=u) for u in users for n in range(100))
    )
    for user in users:
        history = await host.history(user_id=user)
        user_texts = [m.content for m in history if m.role == "user"]
        assert len(user_texts) == 100
        assert sorted(user_texts) == sorted(f"message {user} #{n}" for n in range(100))
        for message in history:
            for other in users:
                if other != user:
                    assert f"message {other} " not in message.content
        assert [m.seq for m in history] == list(range(1, 201))
        assert [m.role for m in history] == ["user", "assistant"] * 100
    assert host.lock_count == 0


async def test_clear_clear_all_size_semantics(host: Host) -> None:
    for i in range(5):
        await host.run(f"a{i}", user_id="user-a")
    await host.run("b0", user_id="user-b")
    await host.run("a-other", user_id="user-a", session_id="second")
    assert await host.size(user_id="user-a", session_id="default") == 10
    assert await host.size(user_id="user-a", session_id=ALL_SESSIONS) == 12
    assert await host.size(user_id="user-b", session_id=ALL_SESSIONS) == 2
    assert await host.size(user_id="user-c", session_id=ALL_SESSIONS) == 0

    assert await host.clear(user_id="user-a", session_id="second") == 1
    assert await host.size(user_id="user-a", session_id=ALL_SESSIONS) == 10
    assert await host.erase_user(user_id="user-a") == 1
    assert await host.size(user_id="user-a", session_id=ALL_SESSIONS) == 0
    assert await host.size(user_id="user-b", session_id=ALL_SESSIONS) == 2

    await host.run("again", user_id="user-a")
    assert await host.clear_all() == 2
    assert await host.size(user_id="user-a", session_id=ALL_SESSIONS) == 0
    assert await host.size(user_id="user-b", session_id=ALL_SESSIONS) == 0
    fresh = await host.run("What is my name?", user_id="user-a")
    assert fresh.reply == "I don't know your name yet."


async def test_clear_forgets_what_the_model_saw(host: Host) -> None:
    await host.run("My name is Alice", user_id="alice")
    await host.clear(user_id="alice", session_id="default")
    reply = await host.run("What is my name?", user_id="alice")
    assert "Alice" not in reply.reply


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "x" * 256}, "user_id"),
        ({"user_id": "bad\nid"}, "user_id"),
        ({"session_id": "tab\there"}, "session_id"),
        ({"tenant_id": "\x00"}, "tenant_id"),
        ({"session_id": 42}, "session_id"),
    ],
)
async def test_invalid_ids_rejected_before_anything_is_stored(
    host: Host, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidId) as caught:
        await host.run("hello", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert field in str(caught.value)
    assert (await host.stats())["total_sessions"] == 0


async def test_longest_valid_id_and_unicode_ids_work(host: Host) -> None:
    long_id = "x" * 255
    await host.run("hi", user_id=long_id, session_id="会话-🙂")
    assert await host.size(user_id=long_id, session_id="会话-🙂") == 2


@pytest.mark.parametrize("message", ["", "   ", None])
async def test_empty_message_rejected(host: Host, message: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        await host.run(message)  # type: ignore[arg-type]
    assert caught.value.field == "message"


class Entered:
    """Counts model calls entered; lets a test wait until n have started."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()

    async def bump(self) -> None:
        async with self._changed:
            self.count += 1
            self._changed.notify_all()

    async def reach(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.count >= n)


def gated_model() -> tuple[FunctionModel, list[str], asyncio.Event, Entered]:
    """A model that records the order it sees turns and waits for a gate."""
    seen: list[str] = []
    gate = asyncio.Event()
    entered = Entered()

    async def reply(request: ModelRequest) -> str:
        text = request.messages[-1].content
        seen.append(f"start {text}")
        await entered.bump()
        await gate.wait()
        seen.append(f"end {text}")
        return f"done {text}"

    return FunctionModel(reply), seen, gate, entered


async def test_queue_policy_runs_turns_of_one_key_in_arrival_order() -> None:
    model, seen, gate, entered = gated_model()
    async with Host(Agent(model=model)) as host:
        tasks = [asyncio.create_task(host.run(f"t{i}", user_id="u")) for i in range(5)]
        other = asyncio.create_task(host.run("other user", user_id="v"))
        await entered.reach(2)  # u's first turn and v's turn both started: keys overlap
        for _ in range(20):  # give queued turns every chance to (wrongly) start
            await asyncio.sleep(0)
        assert sorted(seen) == ["start other user", "start t0"]
        gate.set()
        results = await asyncio.gather(*tasks, other)
        assert [r.reply for r in results[:5]] == [f"done t{i}" for i in range(5)]
        u_events = [e for e in seen if "other" not in e]
        assert u_events == [f"{p} t{i}" for i in range(5) for p in ("start", "end")]
        history = await host.history(user_id="u")
        assert [m.content for m in history if m.role == "user"] == [f"t{i}" for i in range(5)]
        assert host.lock_count == 0


async def test_reject_policy_fails_second_turn_at_once() -> None:
    model, _seen, gate, entered = gated_model()
    async with Host(Agent(model=model), policy="reject") as host:
        first = asyncio.create_task(host.run("first", user_id="u"))
        await entered.reach(1)
        with pytest.raises(SessionBusy):
            await host.run("second", user_id="u")
        other_session = asyncio.create_task(host.run("parallel", user_id="u", session_id="s2"))
        gate.set()
        assert (await first).reply == "done first"
        assert (await other_session).reply == "done parallel"
        assert [m.content for m in await host.history(user_id="u") if m.role == "user"] == ["first"]
        assert host.lock_count == 0


async def test_lock_table_empty_after_many_distinct_keys() -> None:
    """2,000 keys, two turns each at once (one holds, one waits): 20x the live-session cap.
    Every entry must go when its last holder or waiter leaves; a leak of even one shows."""
    held: list[int] = []

    async def model(request: ModelRequest) -> str:
        held.append(host.lock_count)
        await asyncio.sleep(0)  # let every other turn of the chunk take or wait for its lock
        return "ok"

    agent = Agent(model=FunctionModel(model))
    async with Host(agent, store=MemoryStore(max_messages=4), max_live_sessions=100) as host:
        for chunk in range(0, 2_000, 250):
            await asyncio.gather(
                *(host.run("x", user_id=f"u{i}") for i in range(chunk, chunk + 250) for _ in "ab")
            )
            assert host.lock_count == 0
        assert len(held) == 4_000 and max(held) == 250  # the table filled up meanwhile
        assert len(host.cache) <= 100


async def test_model_failure_marks_run_failed_and_next_turn_works(host: Host) -> None:
    calls = {"n": 0}

    def flaky(request: ModelRequest) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ModelError("provider exploded")
        return f"ok {request.messages[-1].content}"

    agent = Agent(model=FunctionModel(flaky))
    async with Host(agent, store=host.store) as h:
        await h.run("one", user_id="u")
        with pytest.raises(ModelError, match="provider exploded"):
            await h.run("two", user_id="u")
        third = await h.run("three", user_id="u")
        assert third.reply == "ok three"
        history = await h.history(user_id="u")
        assert [m.role for m in history] == ["user", "assistant"] * 3
        failed_close = history[3]
        assert failed_close.meta == {"status": "failed", "error": "provider exploded"}
        runs = await h.store.runs(key("u"))
        statuses = sorted(r.status for r in runs)
        assert statuses == ["completed", "completed", "failed"]
        assert h.lock_count == 0


def key(user: str) -> SessionKey:
    return SessionKey("default", user, "default")


async def test_unexpected_model_exception_becomes_model_error() -> None:
    def broken(request: ModelRequest) -> str:
        raise RuntimeError("bug in adapter")

    async with Host(Agent(model=FunctionModel(broken))) as host:
        with pytest.raises(ModelError, match="RuntimeError: bug in adapter"):
            await host.run("hi")
        events = [e async for e in host.stream("again")]
        assert [type(e) for e in events] == [ErrorEvent]
        assert [m.role for m in await host.history()] == ["user", "assistant"] * 2


async def test_user_message_is_stored_before_the_model_is_called(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d.db")
    observed: list[list[str]] = []

    async def model(request: ModelRequest) -> str:
        stored = await store.messages(key("u"))
        observed.append([m.content for m in stored])
        return "reply"

    async with Host(Agent(model=FunctionModel(model)), store=store) as host:
        await host.run("first", user_id="u")
        await host.run("second", user_id="u")
    assert observed == [["first"], ["first", "reply", "second"]]


async def test_history_window_limits_what_the_model_sees(tmp_path: Path) -> None:
    seen: list[int] = []

    def model(request: ModelRequest) -> str:
        seen.append(len(request.messages))
        return "ok"

    agent = Agent(model=FunctionModel(model), history_window=6, instructions="be brief")
    async with Host(agent, store=SQLiteStore(tmp_path / "w.db")) as host:
        for i in range(10):
            await host.run(f"m{i}")
    assert seen == [1, 3, 5, 6, 6, 6, 6, 6, 6, 6]
    assert await host.size() == 20


async def test_window_is_reloaded_from_store_only_its_tail(tmp_path: Path) -> None:
    requests: list[ModelRequest] = []

    def model(request: ModelRequest) -> str:
        requests.append(request)
        return "ok"

    agent = Agent(model=FunctionModel(model), history_window=4)
    async with Host(agent, store=SQLiteStore(tmp_path / "w.db")) as host:
        for i in range(6):
            await host.run(f"m{i}")
    async with Host(agent, store=SQLiteStore(tmp_path / "w.db")) as host:
        await host.run("after restart")
    contents = [m.content for m in requests[-1].messages]
    assert contents == ["ok", "m5", "ok", "after restart"]
    assert requests[-1].instructions == agent.instructions


async def test_sqlite_persistence_new_host_sees_history(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    async with Host(Agent(), store=SQLiteStore(path)) as host:
        await host.run("My name is Alice", user_id="alice")
        await host.update_state({"plan": "pro"}, user_id="alice")
    async with Host(Agent(), store=SQLiteStore(path)) as host:
        reply = await host.run("What is my name?", user_id="alice")
        assert reply.reply == "Your name is Alice."
        assert await host.get_state(user_id="alice") == {"plan": "pro"}
        assert await host.size(user_id="alice", session_id=ALL_SESSIONS) == 4


async def test_stream_yields_typed_events(host: Host) -> None:
    events = [e async for e in host.stream("hello there", user_id="u")]
    assert isinstance(events[-1], Done)
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text == events[-1].result.reply == "You said: hello there"
    assert events[-1].to_dict()["type"] == "done"


async def test_abandoned_stream_marks_run_interrupted(tmp_path: Path) -> None:
    release = asyncio.Event()
    entered = Entered()

    async def slow(request: ModelRequest) -> ModelReply:
        if request.messages[-1].content == "slow":
            await entered.bump()
            await release.wait()
        return ModelReply(text="fine")

    async with Host(Agent(model=FunctionModel(slow)), store=SQLiteStore(tmp_path / "i.db")) as host:
        task = asyncio.create_task(host.run("slow"))
        await entered.reach(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert host.lock_count == 0
        follow = await host.run("next")
        assert follow.reply == "fine"
        history = await host.history()
        assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
        assert history[1].meta is not None and history[1].meta["status"] == "interrupted"
        runs = await host.store.runs(key("default"))
        assert sorted(r.status for r in runs) == ["completed", "interrupted"]


async def test_state_is_per_session_and_merge_patched(host: Host) -> None:
    assert await host.update_state({"a": 1, "nested": {"x": 1}}, user_id="u") == {
        "a": 1,
        "nested": {"x": 1},
    }
    state = await host.update_state({"a": None, "nested": {"y": 2}}, user_id="u")
    assert state == {"nested": {"x": 1, "y": 2}}
    assert await host.get_state(user_id="v") == {}
    assert await host.get_state(user_id="u", session_id="other") == {}


async def test_concurrent_first_turns_open_the_store_once(tmp_path: Path) -> None:
    opened: list[int] = []

    class CountingStore(SQLiteStore):
        async def open(self) -> None:
            opened.append(1)
            await asyncio.sleep(0)  # a real store yields while connecting
            await super().open()

    host = Host(Agent(), store=CountingStore(tmp_path / "o.db"))
    try:
        await asyncio.gather(*(host.run("hi", user_id=f"u{i}") for i in range(20)))
        assert opened == [1]
        assert (await host.stats())["total_sessions"] == 20
    finally:
        await host.close()


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"n": 2**70}, "64-bit"),
        ({"x": float("inf")}, "not finite"),
        ({"deep": eval("[" * 40 + "]" * 40)}, "nested deeper"),
        ({"s": {1, 2}}, "not JSON"),
    ],
)
async def test_state_the_stores_cannot_hold_is_rejected(
    host: Host, state: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        await host.update_state(state, user_id="u")
    assert await host.get_state(user_id="u") == {}
