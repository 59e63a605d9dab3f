"""Context compaction: incremental, whole turns only, ordered with the session's turns,
and a failure that loses nothing and shows."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

import pytest

from agenthost import Agent, Compaction, Host, tool
from agenthost.errors import ConfigError
from agenthost.models import FunctionModel, ModelReply, ModelRequest, OfflineModel
from agenthost.models.tasks import SUMMARY_MARK
from support.clock import FakeClock
from support.stores import make_store

ALICE = {"user_id": "alice", "tenant_id": "acme", "session_id": "s1"}
SPAN = re.compile(r"Messages (\d+)-(\d+):")


@tool
def lookup(topic: str) -> str:
    """Look something up."""
    return f"notes on {topic}"


def test_options_are_resolved_against_the_window() -> None:
    resolved = Agent(history_window=20, compaction=Compaction()).compaction
    assert resolved is not None and (resolved.threshold, resolved.keep) == (16, 10)
    small = Agent(history_window=4, compaction=Compaction()).compaction
    assert small is not None and (small.threshold, small.keep) == (2, 1)
    for bad in (
        Compaction(threshold=21),
        Compaction(threshold=10, keep=10),
        Compaction(keep=-1),
        Compaction(max_summary_chars=10),
    ):
        with pytest.raises(ConfigError):
            Agent(history_window=20, compaction=bad)


class Recorder:
    """The offline model, recording the summary requests it is sent."""

    def __init__(self) -> None:
        self.offline = OfflineModel()
        self.summaries: list[ModelRequest] = []

    def __call__(self, request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(SUMMARY_MARK):
            self.summaries.append(request)
        return self.offline.reply(request)

    def spans(self) -> list[tuple[int, int]]:
        out = []
        for request in self.summaries:
            match = SPAN.search(request.messages[-1].content)
            assert match is not None
            out.append((int(match.group(1)), int(match.group(2))))
        return out


async def test_each_summary_reads_only_what_is_new_and_cuts_between_turns(
    store_kind: str, tmp_path: Path
) -> None:
    recorder = Recorder()
    agent = Agent(
        model=FunctionModel(recorder), tools=(lookup,), history_window=12, compaction=Compaction()
    )
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        await host.run("My name is Alice", **ALICE)
        for i in range(40):
            text = f'/tool lookup {{"topic": "t{i}"}}' if i % 3 == 0 else f"small talk {i}"
            await host.run(text, **ALICE)
            await host.upkeep.drain()
        history = await host.history(**ALICE)
        spans = recorder.spans()
        assert len(spans) >= 5
        assert spans[0][0] == 1
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start == end + 1  # the old summary plus what is new: never the history
        for start, end in spans:
            assert end - start + 1 <= 12 + 4  # at most the window and one more turn
            assert history[end].role == "user"  # the next message starts a turn: whole turns
            assert history[start - 1].role == "user"
        record = await host.get_session(**ALICE)
        assert record is not None and record.summary is not None
        assert record.summary.version == len(spans) and record.summary.to_seq == spans[-1][1]
        assert "The user's name is Alice." in record.summary.text
        previous = recorder.summaries[-1].messages[-1].content
        assert "Current summary:\n- The user's name is Alice." in previous
        assert (await host.run("What is my name?", **ALICE)).reply == "Your name is Alice."
        stats = await host.stats()
        assert (stats["compactions"], stats["compaction_failures"]) == (len(spans), 0)


async def test_a_failed_compaction_keeps_everything_shows_and_retries_later(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    offline = OfflineModel()
    broken = {"on": False}

    def model(request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(SUMMARY_MARK) and broken["on"]:
            raise RuntimeError("summary provider down")
        return offline.reply(request)

    agent = Agent(
        model=FunctionModel(model),
        history_window=8,
        compaction=Compaction(retry_after=60),
    )
    async with Host(agent, store=make_store("sqlite", tmp_path), clock=clock) as host:
        await host.run("My name is Alice", **ALICE)
        for i in range(4):
            await host.run(f"chat {i}", **ALICE)
        await host.upkeep.drain()
        good = (await host.get_session(**ALICE)).summary  # type: ignore[union-attr]
        assert good is not None and good.error is None

        broken["on"] = True
        for i in range(4):
            await host.run(f"more {i}", **ALICE)
            await host.upkeep.drain()
        record = await host.get_session(**ALICE)
        assert record is not None and record.summary is not None
        failed = record.summary
        assert failed.error == "RuntimeError: summary provider down"
        assert (failed.text, failed.to_seq) == (good.text, good.to_seq)  # the old one stands
        assert failed.version == good.version + 1
        assert record.message_count == 18  # and so does every message
        assert "compaction of acme/alice/s1 failed" in caplog.text
        assert (await host.stats())["compaction_failures"] == 1  # not again within retry_after
        assert (await host.run("What is my name?", **ALICE)).reply == "Your name is Alice."

        broken["on"] = False
        clock.advance(61)
        await host.run("after the outage", **ALICE)
        await host.upkeep.drain()
        healed = (await host.get_session(**ALICE)).summary  # type: ignore[union-attr]
        assert healed is not None and healed.error is None and healed.to_seq > good.to_seq
        versions = [s.version for s in await host.store.summaries(record.key)]
        assert versions == list(range(1, healed.version + 1))


async def test_no_turn_runs_while_its_session_is_being_compacted(tmp_path: Path) -> None:
    offline = OfflineModel()
    order: list[str] = []
    gate = asyncio.Event()

    async def model(request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(SUMMARY_MARK):
            order.append("summary begins")
            await gate.wait()
            order.append("summary ends")
        else:
            order.append(request.messages[-1].content)
        return offline.reply(request)

    agent = Agent(model=FunctionModel(model), history_window=8, compaction=Compaction())
    assert agent.compaction is not None and agent.compaction.threshold == 4
    async with Host(agent, store=make_store("sqlite", tmp_path)) as host:
        await host.run("warm up", **ALICE)
        result = await host.run("this turn makes it due", **ALICE)  # the reply is not held up
        assert result.status == "completed"
        queued = [asyncio.create_task(host.run(f"queued {i}", **ALICE)) for i in range(3)]
        elsewhere = await host.run("another session", **{**ALICE, "session_id": "s2"})
        assert elsewhere.status == "completed"  # nor are other sessions
        gate.set()
        for task in queued:
            assert (await task).status == "completed"
        await host.upkeep.drain()
        session_one = [e for e in order if e != "another session"]
        assert session_one[:6] == [
            "warm up",
            "this turn makes it due",
            "summary begins",
            "summary ends",
            "queued 0",
            "queued 1",
        ]
        assert order.index("another session") < order.index("summary ends")
        history = await host.history(**ALICE)
        assert [m.seq for m in history] == list(range(1, 11))


async def test_an_erased_session_is_not_written_back_by_its_compaction(tmp_path: Path) -> None:
    offline = OfflineModel()
    gate = asyncio.Event()
    started = asyncio.Event()

    async def model(request: ModelRequest) -> ModelReply:
        if request.instructions.startswith(SUMMARY_MARK):
            started.set()
            await gate.wait()
        return offline.reply(request)

    agent = Agent(model=FunctionModel(model), history_window=8, compaction=Compaction())
    async with Host(agent, store=make_store("sqlite", tmp_path)) as host:
        for i in range(2):
            await host.run(f"turn {i}", **ALICE)
        await started.wait()
        assert await host.clear(**ALICE) == 1  # erased while its summary is being written
        gate.set()
        await host.upkeep.drain()
        assert await host.get_session(**ALICE) is None
        assert await host.sessions(user_id="alice", tenant_id="acme") == []


async def test_an_agent_without_compaction_does_no_upkeep(host: Host) -> None:
    for i in range(30):
        await host.run(f"turn {i}", user_id="u")
    assert not host.upkeep.enabled and host.upkeep.stats()["upkeep_queued"] == 0
    record = await host.get_session(user_id="u")
    assert record is not None and record.summary is None


async def test_a_cheaper_model_can_write_the_summaries(tmp_path: Path) -> None:
    summaries: list[ModelRequest] = []
    offline = OfflineModel()

    def cheap(request: ModelRequest) -> ModelReply:
        summaries.append(request)
        return offline.reply(request)

    def main(request: ModelRequest) -> ModelReply:
        assert not request.instructions.startswith(SUMMARY_MARK)
        return offline.reply(request)

    agent = Agent(
        model=FunctionModel(main, model_name="main"),
        history_window=8,
        compaction=Compaction(model=FunctionModel(cheap, model_name="cheap")),
    )
    async with Host(agent, store=make_store("memory", tmp_path)) as host:
        for i in range(6):
            await host.run(f"turn {i}", **ALICE)
        await host.upkeep.drain()
        record = await host.get_session(**ALICE)
        assert record is not None and record.summary is not None
        assert record.summary.model == "cheap" and summaries
