"""Long-term memory through the Host: the API, recall within a budget, the model's tools,
extraction after the reply, and the fence that keeps erased users erased."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agenthost import Agent, Host, LongTermMemory
from agenthost.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from agenthost.models import FunctionModel, ModelReply, ModelRequest, OfflineModel, tool_call
from agenthost.models.tasks import EXTRACTION_MARK
from support.stores import make_store

ALICE = {"user_id": "alice", "tenant_id": "acme"}


def recorder(seen: list[ModelRequest]) -> FunctionModel:
    offline = OfflineModel()

    def reply(request: ModelRequest) -> ModelReply:
        seen.append(request)
        return offline.reply(request)

    return FunctionModel(reply)


async def test_the_memory_api(host: Host) -> None:
    first = await host.memories.add(
        "Alice prefers tea", **ALICE, kind="preference", tags=["drinks"]
    )
    assert first.memory_id.startswith("mem_") and first.revision
    assert (first.session_id, first.run_id, first.embedding) == (None, None, None)
    second = await host.memories.add("Alice lives in Lyon", **ALICE, session_id="s1")
    assert await host.memories.get(first.memory_id, **ALICE) == first
    assert [m.memory_id for m in await host.memories.page(**ALICE)] == [
        second.memory_id,
        first.memory_id,
    ]
    assert [m.text for m in await host.memories.search("where does she live", **ALICE)] == [
        "Alice lives in Lyon"
    ]
    assert await host.memories.count(**ALICE) == 2

    changed = await host.memories.update(first.memory_id, **ALICE, text="Alice prefers coffee")
    assert (changed.text, changed.kind, changed.tags) == (
        "Alice prefers coffee",
        "preference",
        ["drinks"],
    )
    assert changed.revision != first.revision and changed.created_at == first.created_at
    cleared = await host.memories.update(first.memory_id, **ALICE, kind=None, tags=[])
    assert (cleared.kind, cleared.tags) == (None, [])
    with pytest.raises(Conflict):  # an explicit revision that is not current
        await host.memories.update(first.memory_id, **ALICE, text="x", revision=first.revision)
    await host.memories.delete(first.memory_id, **ALICE)
    with pytest.raises(NotFound):
        await host.memories.get(first.memory_id, **ALICE)
    with pytest.raises(NotFound):
        await host.memories.delete(first.memory_id, **ALICE)
    with pytest.raises(NotFound):  # another user's id is simply not there
        await host.memories.get(second.memory_id, user_id="bob", tenant_id="acme")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 4001}, "text"),
        ({"text": "nul \x00 inside"}, "text"),
        ({"text": "ok", "kind": ""}, "kind"),
        ({"text": "ok", "kind": "k" * 65}, "kind"),
        ({"text": "ok", "tags": ["a\nb"]}, "tags"),
        ({"text": "ok", "tags": [str(i) for i in range(21)]}, "tags"),
        ({"text": "ok", "user_id": "default"}, "user_id"),
        ({"text": "ok", "user_id": ""}, "user_id"),
        ({"text": "ok", "session_id": "bad\nid"}, "session_id"),
    ],
)
async def test_bad_memories_are_refused_with_the_field(
    host: Host, kwargs: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"user_id": "alice", **kwargs}
    text = arguments.pop("text")
    with pytest.raises(InvalidInput) as caught:
        await host.memories.add(text, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert await host.memories.count(user_id="alice") == 0


async def test_the_per_user_cap(tmp_path: Path) -> None:
    agent = Agent(long_term_memory=LongTermMemory(max_per_user=2))
    async with Host(agent, store=make_store("sqlite", tmp_path)) as host:
        await host.memories.add("one", **ALICE)
        await host.memories.add("two", **ALICE)
        with pytest.raises(QuotaExceeded):
            await host.memories.add("three", **ALICE)
        await host.memories.add("bob has room", user_id="bob", tenant_id="acme")


async def test_a_turn_sees_the_most_relevant_memories_within_the_budget(
    store_kind: str, tmp_path: Path
) -> None:
    seen: list[ModelRequest] = []
    options = LongTermMemory(max_items=2, max_chars=60, tools=False)
    agent = Agent(model=recorder(seen), long_term_memory=options)
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        await host.memories.add("The user's dog is called Rex", **ALICE)
        await host.memories.add("The user's cat is called Tom and sleeps a lot", **ALICE)
        await host.memories.add("The user's " + "very " * 20 + "old dog is called Max", **ALICE)
        await host.memories.add("The user likes opera", **ALICE)
        await host.memories.add("Bob's dog is Fido", user_id="bob", tenant_id="acme")

        await host.run("Tell me about my dog", **ALICE)
        memory, user = seen[-1].messages
        assert memory.role == "system" and user.content == "Tell me about my dog"
        lines = memory.content.splitlines()[1:]
        assert len(lines) == 1 and lines[0].startswith("- The user's dog is called Rex (id mem_")
        # the 100-character memory does not fit the 60-character budget; Bob's never shows

        await host.run("my cat or my dog?", **ALICE)
        lines = seen[-1].messages[0].content.splitlines()[1:]
        assert len(lines) == 1  # two would be over 60 characters

        await host.run("Something else entirely", **ALICE)
        assert [m.role for m in seen[-1].messages] == ["user", "assistant"] * 2 + ["user"]
        await host.run("Tell me about my dog", user_id="bob", tenant_id="acme")
        assert "Fido" in seen[-1].messages[0].content and "Rex" not in seen[-1].messages[0].content
        await host.run("Tell me about my dog", tenant_id="acme")  # anonymous: nothing
        assert [m.role for m in seen[-1].messages] == ["user"]


async def test_the_models_memory_tools(store_kind: str, tmp_path: Path) -> None:
    agent = Agent(model="offline", long_term_memory=LongTermMemory())
    assert not agent.tools  # the agent itself is unchanged: tools are added per host
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        result = await host.run(
            '/tool remember {"text": "The user plays the cello", "kind": "hobby"}',
            **ALICE,
            session_id="s1",
        )
        assert result.reply.startswith("remember returned: remembered (id mem_")
        (stored,) = await host.memories.page(**ALICE)
        assert (stored.text, stored.kind, stored.session_id, stored.run_id) == (
            "The user plays the cello",
            "hobby",
            "s1",
            result.run_id,
        )
        found = await host.run('/tool search_memories {"query": "cello"}', **ALICE)
        assert f"The user plays the cello (id {stored.memory_id})" in found.reply
        gone = await host.run(f'/tool forget {{"memory_id": "{stored.memory_id}"}}', **ALICE)
        assert gone.reply == f"forget returned: forgotten ({stored.memory_id})"
        again = await host.run(f'/tool forget {{"memory_id": "{stored.memory_id}"}}', **ALICE)
        assert again.reply == f"forget returned: no memory with id {stored.memory_id}"
        anonymous = await host.run('/tool remember {"text": "I am nobody"}')
        assert "anonymous users get no memory" in anonymous.reply
        assert await host.memories.count(**ALICE) == 0


async def test_erasing_the_user_fences_a_running_turns_memory_writes(
    store_kind: str, tmp_path: Path
) -> None:
    holder: dict[str, Host] = {}

    async def erase_then_remember(request: ModelRequest) -> ModelReply:
        if request.messages[-1].role == "user":
            await holder["host"].erase_user(**ALICE)  # the user is erased mid-turn
            return ModelReply(tool_calls=[tool_call("remember", {"text": "written back?"})])
        return ModelReply(text=request.messages[-1].content)

    agent = Agent(model=FunctionModel(erase_then_remember), long_term_memory=LongTermMemory())
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        holder["host"] = host
        with pytest.raises(Conflict):
            await host.run("hello", **ALICE)
        assert await host.memories.count(**ALICE) == 0
        assert await host.sessions(**ALICE) == []


async def test_extraction_runs_after_the_reply_never_in_the_users_wait(tmp_path: Path) -> None:
    release = asyncio.Event()
    extraction_requests: list[ModelRequest] = []
    offline = OfflineModel()

    async def model(request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(EXTRACTION_MARK):
            extraction_requests.append(request)
            await release.wait()  # a slow extraction model
        return offline.reply(request)

    agent = Agent(model=FunctionModel(model), long_term_memory=LongTermMemory(extract=True))
    async with Host(agent, store=make_store("sqlite", tmp_path)) as host:
        first = await host.run("My name is Alice and I like green tea", **ALICE, session_id="s1")
        assert first.reply == "Nice to meet you, Alice!"  # answered while extraction waits
        second = await host.run("What is my name?", **ALICE, session_id="s2")
        assert second.reply == "I don't know your name yet."  # not extracted yet
        assert len(extraction_requests) == 1 and await host.memories.count(**ALICE) == 0
        release.set()
        await host.upkeep.drain()
        texts = {m.text for m in await host.memories.page(**ALICE)}
        assert texts == {"The user's name is Alice.", "The user said: I like green tea."}
        assert (await host.run("What is my name?", **ALICE, session_id="s3")).reply == (
            "Your name is Alice."
        )
        await host.upkeep.drain()
        await host.run("My name is Alice", **ALICE, session_id="s4")  # known: not stored twice
        await host.upkeep.drain()
        assert await host.memories.count(**ALICE) == 2
        assert (await host.stats())["memories_extracted"] == 2


async def test_a_failing_extraction_model_is_logged_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    offline = OfflineModel()

    def model(request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(EXTRACTION_MARK):
            raise RuntimeError("extraction provider down")
        return offline.reply(request)

    agent = Agent(model=FunctionModel(model), long_term_memory=LongTermMemory(extract=True))
    async with Host(agent, store=make_store("sqlite", tmp_path)) as host:
        result = await host.run("My name is Alice", **ALICE)
        assert result.status == "completed"
        await host.upkeep.drain()
        assert await host.memories.count(**ALICE) == 0
        assert (await host.stats())["upkeep_failures"] == 1
        assert "extraction provider down" in caplog.text


async def test_export_has_memories_and_erasure_takes_them(host: Host) -> None:
    await host.run("hello", **ALICE)
    kept = await host.memories.add("The user's name is Alice.", **ALICE)
    await host.memories.add("Bob's secret", user_id="bob", tenant_id="acme")
    exported = await host.export_user(**ALICE)
    assert exported["memories"] == [kept.to_dict()]
    assert exported["sessions"][0]["summaries"] == []
    assert await host.erase_user(**ALICE) == 1
    assert await host.memories.count(**ALICE) == 0
    assert await host.memories.count(user_id="bob", tenant_id="acme") == 1
    assert (await host.export_user(**ALICE))["memories"] == []
