"""The issue's scenario, on the offline model: a long session keeps the user's name through
its summary, a new session of the same user gets it from memory, and nobody else gets it.
"""

from __future__ import annotations

from pathlib import Path

from agenthost import Agent, Compaction, Host, LongTermMemory
from agenthost.models import FunctionModel, ModelRequest, OfflineModel
from support.stores import make_store

SMALL_TALK = 100  # turns: 200 messages after the name was stated


async def talk(host: Host, *, user_id: str, session_id: str, tenant_id: str = "acme") -> None:
    await host.run("My name is Alice", user_id=user_id, session_id=session_id, tenant_id=tenant_id)
    for i in range(SMALL_TALK):
        text = f"Tell me something about topic number {i}"
        await host.run(text, user_id=user_id, session_id=session_id, tenant_id=tenant_id)


async def ask(host: Host, *, user_id: str, session_id: str, tenant_id: str = "acme") -> str:
    result = await host.run(
        "What is my name?", user_id=user_id, session_id=session_id, tenant_id=tenant_id
    )
    return result.reply


async def test_without_compaction_the_name_falls_out_of_the_window(
    store_kind: str, tmp_path: Path
) -> None:
    agent = Agent(name="plain", model="offline", history_window=20)
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        await talk(host, user_id="alice", session_id="long")
        assert await ask(host, user_id="alice", session_id="long") == "I don't know your name yet."


async def test_a_long_session_recalls_the_name_through_its_summary(
    store_kind: str, tmp_path: Path
) -> None:
    seen: list[ModelRequest] = []
    offline = OfflineModel()

    def model(request: ModelRequest) -> str:
        seen.append(request)
        return offline.reply(request).text

    agent = Agent(
        name="compacting", model=FunctionModel(model), history_window=20, compaction=Compaction()
    )
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        await talk(host, user_id="alice", session_id="long")
        await host.upkeep.drain()
        record = await host.get_session(user_id="alice", session_id="long", tenant_id="acme")
        assert record is not None and record.summary is not None
        assert record.message_count == 202
        assert "The user's name is Alice." in record.summary.text
        assert record.summary.from_seq == 1 and record.summary.to_seq >= 202 - 20
        assert record.summary.error is None

        seen.clear()
        assert await ask(host, user_id="alice", session_id="long") == "Your name is Alice."
        (request,) = seen
        assert request.messages[0].role == "system"
        assert "The user's name is Alice." in request.messages[0].content
        window = request.messages[1:]
        assert len(window) <= 20 and window[0].role == "user"
        assert all("My name is" not in m.content for m in window)  # only the summary knows
        assert window[0].seq == record.summary.to_seq + 1  # nothing dropped, nothing twice


async def test_a_new_session_recalls_through_memory_and_nobody_else_does(
    store_kind: str, tmp_path: Path
) -> None:
    agent = Agent(
        name="remembering",
        model="offline",
        history_window=20,
        long_term_memory=LongTermMemory(extract=True),
        compaction=Compaction(),
    )
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        await talk(host, user_id="alice", session_id="long")
        await host.upkeep.drain()
        assert await ask(host, user_id="alice", session_id="long") == "Your name is Alice."
        # a brand-new session of the same user: its only source is long-term memory
        assert await ask(host, user_id="alice", session_id="fresh") == "Your name is Alice."
        (memory,) = await host.memories.search("name", user_id="alice", tenant_id="acme")
        assert memory.text == "The user's name is Alice."
        assert (memory.session_id, memory.tags) == ("long", ["extracted"])
        # another user of the tenant, and the same user id in another tenant: nothing
        assert await ask(host, user_id="bob", session_id="fresh") == "I don't know your name yet."
        other = await ask(host, user_id="alice", session_id="fresh", tenant_id="other")
        assert other == "I don't know your name yet."
        # nor does anyone anonymous: the default user has no memory at all
        anonymous = await host.run("My name is Mallory", tenant_id="acme")
        await host.upkeep.drain()
        assert anonymous.user_id == "default"
        assert await ask(host, user_id="default", session_id="fresh") == (
            "I don't know your name yet."
        )
