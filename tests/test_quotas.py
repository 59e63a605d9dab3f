"""Quotas on a Host (counted in this process): each limit, both levels, overrides, and
that a Host with no limit never calls its counters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from agenthost import (
    Agent,
    FunctionModel,
    Host,
    InvalidInput,
    Message,
    ModelError,
    ModelReply,
    ModelRequest,
    RateLimited,
    SessionKey,
    TokenBudgetExhausted,
    TooManyConcurrentTurns,
    TooManyLiveSessions,
    Usage,
)
from agenthost.quotas import (
    Check,
    Limits,
    MemoryQuotaBackend,
    Overrides,
    QuotaPolicy,
    Quotas,
    Refusal,
    TenantLimits,
)
from support.clock import FakeClock


class CountingBackend(MemoryQuotaBackend):
    """The in-process backend, counting the calls that touch counters."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.calls: list[str] = []
        self.charged: list[int] = []  # tokens of each add_tokens

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        self.calls.append("admit")
        return await super().admit(checks)

    async def release(self, checks: Sequence[Check]) -> None:
        self.calls.append("release")
        await super().release(checks)

    async def renew(self, checks: Sequence[Check]) -> None:
        self.calls.append("renew")
        await super().renew(checks)

    async def add_tokens(self, checks: Sequence[Check], tokens: int) -> None:
        self.calls.append("add_tokens")
        self.charged.append(tokens)
        await super().add_tokens(checks, tokens)


def quotas(clock: FakeClock, **kwargs: object) -> tuple[Quotas, CountingBackend]:
    backend = CountingBackend(clock)
    return Quotas(backend=backend, clock=clock, **kwargs), backend  # type: ignore[arg-type]


def host_with(q: Quotas, clock: FakeClock, model: object = "offline") -> Host:
    return Host(Agent(name="a", model=model), quotas=q, clock=clock)  # type: ignore[arg-type]


async def test_a_host_with_no_limit_never_calls_its_counters(clock: FakeClock) -> None:
    q, backend = quotas(clock)
    async with host_with(q, clock) as host:
        for n in range(5):
            await host.run(f"hello {n}", user_id=f"u{n % 2}")
        [_ async for _ in host.stream("streamed", user_id="u0")]
        await host.run_stateless([Message("user", "hi")])
    assert backend.calls == []


async def test_limits_of_another_tenant_cost_this_one_nothing(clock: FakeClock) -> None:
    strict = Overrides(tenants={"strict": TenantLimits(user=Limits(requests_per_minute=1))})
    q, backend = quotas(clock, overrides=strict)
    async with host_with(q, clock) as host:
        await host.run("free", user_id="u", tenant_id="relaxed")
        await host.run("free again", user_id="u", tenant_id="relaxed")
        assert backend.calls == []
        await host.run("counted", user_id="u", tenant_id="strict")
        with pytest.raises(RateLimited):
            await host.run("refused", user_id="u", tenant_id="strict")
    assert backend.calls == ["admit", "admit"]


async def test_requests_per_minute_is_a_sliding_window(clock: FakeClock) -> None:
    q, _ = quotas(clock, user=Limits(requests_per_minute=3))
    async with host_with(q, clock) as host:
        for n in range(3):
            await host.run(f"t{n}", user_id="u")
            clock.advance(10)
        with pytest.raises(RateLimited) as refused:
            await host.run("fourth", user_id="u")
        assert refused.value.code == "rate_limited"
        assert refused.value.retry_after == pytest.approx(30)  # the first leaves the window
        assert refused.value.scope == "user" and refused.value.limit == 3
        await host.run("another user", user_id="v")
        clock.advance(30.5)
        await host.run("fourth, later", user_id="u")
        with pytest.raises(RateLimited):
            await host.run("fifth", user_id="u")


async def test_a_tenant_limit_counts_every_user_and_refusals_count_nowhere(
    clock: FakeClock,
) -> None:
    q, _ = quotas(clock, user=Limits(requests_per_minute=1), tenant=Limits(requests_per_minute=3))
    async with host_with(q, clock) as host:
        await host.run("a", user_id="alice")
        for _ in range(3):  # refused by the user limit: not counted for the tenant either
            with pytest.raises(RateLimited) as refused:
                await host.run("again", user_id="alice")
            assert refused.value.scope == "user"
        await host.run("b", user_id="bob")
        await host.run("c", user_id="carol")
        with pytest.raises(RateLimited) as refused:
            await host.run("d", user_id="dave")
        assert refused.value.scope == "tenant"
        await host.run("other tenant", user_id="dave", tenant_id="t2")


async def test_concurrent_turns_are_leased_and_released_however_a_turn_ends(
    clock: FakeClock,
) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def reply(request: ModelRequest) -> str:
        text = request.messages[-1].content
        if text == "boom":
            raise ModelError("provider down")
        if text.startswith("wait"):
            entered.set()
            await gate.wait()
        return "ok"

    q, backend = quotas(clock, user=Limits(concurrent_turns=1))
    async with host_with(q, clock, FunctionModel(reply)) as host:
        first = asyncio.create_task(host.run("wait", user_id="u", session_id="s1"))
        await entered.wait()
        with pytest.raises(TooManyConcurrentTurns) as refused:
            await host.run("meanwhile", user_id="u", session_id="s2")
        assert refused.value.retry_after == 1
        await host.run("someone else", user_id="v")
        gate.set()
        assert (await first).reply == "ok"
        await host.run("after", user_id="u", session_id="s2")
        with pytest.raises(ModelError):
            await host.run("boom", user_id="u")
        await host.run("after a failure", user_id="u")
        gate.clear()
        entered.clear()
        cancelled = asyncio.create_task(host.run("wait again", user_id="u"))
        await entered.wait()
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await host.run("after a cancellation", user_id="u")
    assert backend.calls.count("admit") == backend.calls.count("release") + 1  # the refusal


async def test_tokens_per_day_from_provider_usage_reset_at_utc_midnight() -> None:
    clock = FakeClock(start=86_400 * 20_000 + 3600.0)  # 01:00 UTC

    def reply(request: ModelRequest) -> ModelReply:
        return ModelReply(text="ok", usage=Usage(input_tokens=60, output_tokens=10, requests=1))

    q, _ = quotas(clock, user=Limits(tokens_per_day=100))
    async with host_with(q, clock, FunctionModel(reply)) as host:
        await host.run("one", user_id="u")  # 70 used
        await host.run("two", user_id="u")  # under 100 when it started: 140 used
        with pytest.raises(TokenBudgetExhausted) as refused:
            await host.run("three", user_id="u")
        assert refused.value.code == "token_budget_exhausted"
        assert refused.value.retry_after == pytest.approx(23 * 3600)
        await host.run("another user", user_id="v")
        clock.advance(23 * 3600)
        await host.run("a new day", user_id="u")


async def test_running_turns_overshoot_a_token_budget_by_their_usage_at_most(
    clock: FakeClock,
) -> None:
    """The budget is checked at admission: turns running when it is reached finish and
    are charged (the overshoot: at most what the running turns spend, and no more turns
    run at once than ``concurrent_turns``); the next request is refused."""
    gate, both = asyncio.Event(), asyncio.Event()
    started: list[str] = []

    async def reply(request: ModelRequest) -> ModelReply:
        started.append(request.messages[-1].content)
        if len(started) == 2:
            both.set()
        await gate.wait()
        return ModelReply(text="ok", usage=Usage(input_tokens=60, output_tokens=10, requests=1))

    q, backend = quotas(clock, user=Limits(tokens_per_day=100, concurrent_turns=2))
    async with host_with(q, clock, FunctionModel(reply)) as host:
        running = [
            asyncio.create_task(host.run(f"turn {n}", user_id="u", session_id=f"s{n}"))
            for n in range(2)
        ]
        await both.wait()  # both admitted under the budget (nothing spent yet)
        with pytest.raises(TooManyConcurrentTurns):  # a third would overshoot further
            await host.run("third", user_id="u", session_id="s2")
        gate.set()
        for task in running:
            assert (await task).reply == "ok"
        assert backend.charged == [70, 70]  # 140 of 100: over by what the running turns spent
        for _ in range(2):
            with pytest.raises(TokenBudgetExhausted) as refused:
                await host.run("after the overshoot", user_id="u", session_id="s3")
            assert refused.value.code == "token_budget_exhausted"
        await host.run("another user", user_id="v")


async def test_tokens_are_estimated_when_the_model_reports_none(clock: FakeClock) -> None:
    q, _ = quotas(clock, user=Limits(tokens_per_day=1))
    async with host_with(q, clock, FunctionModel(lambda request: "a reply")) as host:
        await host.run("a question", user_id="u")
        with pytest.raises(TokenBudgetExhausted):
            await host.run("again", user_id="u")


async def test_live_sessions_count_sessions_used_within_the_ttl(clock: FakeClock) -> None:
    q, _ = quotas(clock, user=Limits(live_sessions=2), session_ttl=100)
    async with host_with(q, clock) as host:
        await host.run("hi", user_id="u", session_id="s1")
        await host.run("hi", user_id="u", session_id="s2")
        with pytest.raises(TooManyLiveSessions) as refused:
            await host.run("hi", user_id="u", session_id="s3")
        assert refused.value.code == "too_many_live_sessions"
        assert refused.value.retry_after == pytest.approx(100)
        await host.run("again", user_id="u", session_id="s1")  # a live one is welcome
        clock.advance(60)
        await host.run("again", user_id="u", session_id="s1")
        clock.advance(41)  # s2 idle for 101 s: no longer live
        await host.run("hi", user_id="u", session_id="s3")
        with pytest.raises(TooManyLiveSessions):
            await host.run("hi", user_id="u", session_id="s4")


async def test_overrides_win_field_by_field_and_zero_lifts_a_limit(clock: FakeClock) -> None:
    overrides = Overrides(
        tenants={"acme": TenantLimits(user=Limits(requests_per_minute=2))},
        users={("acme", "bot"): Limits(requests_per_minute=0)},
    )
    q, _ = quotas(clock, user=Limits(requests_per_minute=1, live_sessions=5), overrides=overrides)
    assert q.limits_for("acme", "alice").user == Limits(2, None, None, 5)
    assert q.limits_for("acme", "bot").user == Limits(0, None, None, 5)
    async with host_with(q, clock) as host:
        for _ in range(2):
            await host.run("hi", user_id="alice", tenant_id="acme")
        with pytest.raises(RateLimited):
            await host.run("hi", user_id="alice", tenant_id="acme")
        for _ in range(10):
            await host.run("hi", user_id="bot", tenant_id="acme")
        await q.set_user("acme", "alice", Limits(requests_per_minute=5))  # an admin, at run time
        await host.run("hi", user_id="alice", tenant_id="acme")
        await q.set_user("acme", "alice", None)
        with pytest.raises(RateLimited):
            await host.run("hi", user_id="alice", tenant_id="acme")


async def test_stateless_turns_and_early_admissions_count(clock: FakeClock) -> None:
    q, backend = quotas(clock, user=Limits(requests_per_minute=2))
    async with host_with(q, clock) as host:
        await host.run_stateless([Message("user", "hi")], user_id="u")
        admission = await q.admit(SessionKey.of(user_id="u"))
        assert admission is not None
        await host.run("admitted before", user_id="u", admission=admission)
        with pytest.raises(RateLimited):
            await q.admit(SessionKey.of(user_id="u"))
    assert backend.calls.count("admit") == 3


def test_limits_refuse_bad_values() -> None:
    with pytest.raises(InvalidInput, match="requests_per_minute"):
        Limits(requests_per_minute=-1)
    with pytest.raises(InvalidInput, match="unknown limit"):
        Limits.of({"rpm": 3})
    with pytest.raises(InvalidInput):
        TenantLimits.of({"users": {}})
    assert Limits.of({"tokens_per_day": 10}).over(Limits(1, 2, 3, 4)) == Limits(1, 2, 10, 4)
    assert not QuotaPolicy(user=Limits(requests_per_minute=0)).may_limit
