"""Usage metering on a Host: what is counted, on which model and day, and that meters of
two Hosts over one SQLite file add up exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from agenthost import (
    Agent,
    FunctionModel,
    Host,
    ModelError,
    ModelReply,
    ModelRequest,
    SQLiteStore,
    StoreUnavailable,
    Usage,
    UsageMeter,
    tool,
    tool_call,
)
from agenthost.usage import Dimension, MemoryUsageLedger, SQLiteUsageLedger, UsageRow
from support.clock import FakeClock

DAY = 86_400
START = DAY * 20_000 + 3600.0  # 2024-10-04 01:00 UTC
ALL = {"since": "1990-01-01", "until": "2100-01-01"}


def scripted(request: ModelRequest) -> ModelReply:
    """10 in / 1 out per call; "tool" asks for the approved tool first, "boom" fails."""
    text = request.messages[-1].content
    usage = Usage(input_tokens=10, output_tokens=1, requests=1)
    if text == "boom":
        raise ModelError("provider down")
    if text == "tool":
        return ModelReply(tool_calls=[tool_call("approved")], usage=usage)
    return ModelReply(text="ok", usage=usage)


@tool(requires_approval=True)
def approved() -> str:
    """A tool that waits for a human."""
    return "done"


def meter(clock: FakeClock, ledger: object = None) -> UsageMeter:
    return UsageMeter(ledger, flush_interval=0, clock=clock)  # type: ignore[arg-type]


async def test_turns_errors_and_tokens_per_user_model_and_day() -> None:
    clock = FakeClock(START)
    usage = meter(clock)
    model = FunctionModel(scripted, model_name="scripted")
    async with Host(Agent(name="helper", model=model), usage=usage, clock=clock) as host:
        await host.run("hi", user_id="alice")
        await host.run("hi again", user_id="alice", tenant_id="acme")
        with pytest.raises(ModelError):
            await host.run("boom", user_id="alice")
        clock.advance(DAY)
        await host.run("tomorrow", user_id="bob")
        rows = await usage.query(**ALL, group_by=["day", "tenant_id", "user_id", "agent", "model"])
    assert [r.to_dict() for r in rows] == [
        {
            "day": "2024-10-04",
            "tenant_id": "acme",
            "user_id": "alice",
            "agent": "helper",
            "model": "scripted",
            "turns": 1,
            "errors": 0,
            "input_tokens": 10,
            "output_tokens": 1,
            "total_tokens": 11,
        },
        {
            "day": "2024-10-04",
            "tenant_id": "default",
            "user_id": "alice",
            "agent": "helper",
            "model": "scripted",
            "turns": 2,
            "errors": 1,
            "input_tokens": 10,
            "output_tokens": 1,
            "total_tokens": 11,
        },
        {
            "day": "2024-10-05",
            "tenant_id": "default",
            "user_id": "bob",
            "agent": "helper",
            "model": "scripted",
            "turns": 1,
            "errors": 0,
            "input_tokens": 10,
            "output_tokens": 1,
            "total_tokens": 11,
        },
    ]
    (alice,) = await usage.query(**ALL, tenant_id="default", user_id="alice")
    assert (alice.turns, alice.errors, alice.total_tokens) == (2, 1, 11)


async def test_erasing_a_user_through_the_host_drops_their_name_not_the_totals() -> None:
    clock = FakeClock(START)
    usage = meter(clock)
    model = FunctionModel(scripted, model_name="scripted")
    async with Host(Agent(name="helper", model=model), usage=usage, clock=clock) as host:
        await host.run("hi", user_id="alice")
        await host.run("hi", user_id="alice", session_id="s2")
        await host.run("hi", user_id="bob")
        await host.erase_user(user_id="alice")
        await host.run("after", user_id="alice")  # within the erasure's fence: not named
        rows = await usage.query(**ALL, group_by=["user_id"])
    assert {r.user_id: (r.turns, r.total_tokens) for r in rows} == {
        "(erased)": (3, 33),
        "bob": (1, 11),
    }


async def test_a_turn_paused_for_approval_counts_once_with_every_token() -> None:
    clock = FakeClock(START)
    usage = meter(clock)
    agent = Agent(name="a", model=FunctionModel(scripted, model_name="m"), tools=[approved])
    async with Host(agent, usage=usage, clock=clock) as host:
        paused = await host.run("tool", user_id="u")
        assert paused.status == "awaiting_approval"
        (row,) = await usage.query(**ALL)
        assert (row.turns, row.input_tokens) == (0, 10)  # tokens spent, turn not finished
        call_id = paused.approvals[0].id
        done = await host.approve(call_id, True, user_id="u")
        assert done.status == "completed" and done.usage.input_tokens == 20
        (row,) = await usage.query(**ALL)
        assert (row.turns, row.input_tokens, row.output_tokens) == (1, 20, 2)


async def test_a_host_without_a_meter_has_no_watcher() -> None:
    async with Host(Agent(name="a")) as host:
        assert host.usage is None and host._env.watcher is None
        await host.run("hi")


class FlakyLedger(MemoryUsageLedger):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True
        self.batches: list[str] = []

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        self.batches.append(batch)
        if self.fail:
            self.fail = False
            raise StoreUnavailable("ledger away")
        await super().add(rows, batch=batch)


async def test_a_failed_flush_keeps_the_counts_for_the_next() -> None:
    clock = FakeClock(START)
    ledger = FlakyLedger()
    usage = meter(clock, ledger)
    async with Host(Agent(name="a"), usage=usage, clock=clock) as host:
        await host.run("one", user_id="u")
        with pytest.raises(StoreUnavailable):
            await usage.flush()
        await host.run("two", user_id="u")
        assert await usage.flush() == 2  # the failed batch as it was, then the new one
        (row,) = await ledger.query(**ALL)
        assert row.turns == 2
    assert ledger.batches[0] == ledger.batches[1] != ledger.batches[2]


async def test_two_hosts_metering_into_one_sqlite_file_add_up_exactly(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    meters = [UsageMeter(SQLiteUsageLedger(str(path)), flush_interval=0.01) for _ in range(2)]
    hosts = [
        Host(Agent(name="a", model="offline"), store=SQLiteStore(path), usage=m) for m in meters
    ]
    for host in hosts:
        await host.start()
    try:
        await asyncio.gather(
            *(
                hosts[n % 2].run(f"turn {n}", user_id=f"u{n % 5}", session_id=f"s{n}")
                for n in range(60)
            )
        )
        expected_tokens = 0
        for host in hosts:
            runs = [
                r
                for s in await host.sessions(tenant_id=None)
                for r in await host.runs(
                    tenant_id=s.key.tenant_id, user_id=s.key.user_id, session_id=s.key.session_id
                )
            ]
            expected_tokens = sum(r.usage.total_tokens for r in runs)
    finally:
        for host in hosts:
            await host.close()  # flushes
    reader = SQLiteUsageLedger(str(path))
    try:
        by_user = await reader.query(**ALL, group_by=["user_id"])
        assert [(r.user_id, r.turns) for r in by_user] == [(f"u{n}", 12) for n in range(5)]
        (total,) = await reader.query(**ALL)
        assert total.turns == 60 and total.total_tokens == expected_tokens > 0
    finally:
        await reader.close()


@pytest.mark.parametrize(
    "group_by",
    [(), ("day",), ("model", "agent"), ("tenant_id", "user_id", "day", "agent", "model")],
)
async def test_grouping_keeps_the_totals(group_by: tuple[Dimension, ...]) -> None:
    clock = FakeClock(START)
    usage = meter(clock)
    async with Host(Agent(name="a"), usage=usage, clock=clock) as host:
        for n in range(6):
            await host.run(f"t{n}", user_id=f"u{n % 3}", tenant_id=f"t{n % 2}")
            clock.advance(DAY / 2)
        rows = await usage.query(**ALL, group_by=group_by)
    assert sum(r.turns for r in rows) == 6
