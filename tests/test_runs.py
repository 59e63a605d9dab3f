"""Runs outside their request (``host.runner``): background, followed, resumed, cancelled,
idempotent. Two Hosts over one store stand in for two processes.

The model is gated: it streams one delta per ``gate.release()``, so a test decides
exactly where the run is when it follows, resumes or cancels it (no sleeps).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agenthost import Agent, Host, MemoryStore, SQLiteStore
from agenthost.coordination.files import FileLockCoordinator
from agenthost.errors import IdempotencyKeyReused, NotFound, SessionBusy
from agenthost.runevents import RunEvent
from agenthost.runs import RunOptions
from support.gated import GatedModel

FAST = RunOptions(poll_interval=0.01, flush_interval=0.001)


def texts(events: list[RunEvent]) -> list[str]:
    return [e.data.get("text", e.type) for e in events]


async def collect(source: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in source]


@pytest.fixture
def model() -> GatedModel:
    return GatedModel()


@pytest.fixture
async def pair(model: GatedModel, tmp_path: Path) -> AsyncIterator[tuple[Host, Host]]:
    """Two hosts on one SQLite file with file locks: two processes, as far as they know."""
    agent = Agent(name="a", model=model)
    path = tmp_path / "runs.db"

    def host() -> Host:
        return Host(
            agent,
            store=SQLiteStore(path),
            coordinator=FileLockCoordinator(f"{path}.locks"),
            runs=FAST,
        )

    async with host() as a, host() as b:
        yield a, b


async def test_a_background_run_is_followed_from_the_other_host_and_resumed_after_any_seq(
    pair: tuple[Host, Host], model: GatedModel
) -> None:
    a, b = pair
    run = await a.runner.start("count 4", tenant_id="t", user_id="u", session_id="s", publish=True)
    stored = await b.get_run(run.run_id)
    assert stored is not None and stored.status == "running"  # began: message and run stored

    follower = b.runner.follow(run.run_id)
    model.release(2)
    first = [await anext(follower), await anext(follower)]
    assert texts(first) == ["w1 ", "w2 "]
    await follower.aclose()  # the connection drops

    model.release(2)
    resumed = await collect(b.runner.follow(run.run_id, after=first[-1].seq))
    assert [e.seq for e in resumed] == [3, 4, 5]
    assert texts(resumed) == ["w3 ", "w4", "done"]
    assert resumed[-1].data["reply"] == "w1 w2 w3 w4"
    everything = await collect(b.runner.follow(run.run_id))
    assert [e.seq for e in everything] == [1, 2, 3, 4, 5]
    assert everything == [*first, *resumed]
    view = await b.runner.view(run.run_id)
    assert view is not None and view.status == "completed" and view.published
    assert view.result is not None and view.result["reply"] == "w1 w2 w3 w4"


async def test_cancel_from_the_other_host_interrupts_the_run_where_it_runs(
    pair: tuple[Host, Host], model: GatedModel
) -> None:
    a, b = pair
    run = await a.runner.start("count 5", tenant_id="t", user_id="u", session_id="s", publish=True)
    model.release(1)
    follower = b.runner.follow(run.run_id)
    assert texts([await anext(follower)]) == ["w1 "]
    assert await b.runner.cancel(run.run_id)  # a polls for the request and cancels
    rest = await collect(follower)
    assert [e.type for e in rest] == ["done"]
    assert rest[-1].data["status"] == "interrupted"
    assert rest[-1].data["reply"] == "w1 "
    assert rest[-1].data["error"] == "canceled by the client"
    stored = await b.get_run(run.run_id)
    assert stored is not None and (stored.status, stored.error) == (
        "interrupted",
        "canceled by the client",
    )
    history = await b.history(tenant_id="t", user_id="u", session_id="s")
    assert [(m.role, m.content) for m in history] == [("user", "count 5"), ("assistant", "w1 ")]
    # the session goes on normally
    model.release(1)
    assert (await b.run("again", tenant_id="t", user_id="u", session_id="s")).reply == "w1"


async def test_one_claim_runs_the_turn_and_every_retry_gets_its_result(
    pair: tuple[Host, Host], model: GatedModel
) -> None:
    a, b = pair
    ids: dict[str, Any] = {"tenant_id": "t", "user_id": "u", "session_id": "s"}
    request = {"message": "count 2", "session_id": "s"}
    claims = await asyncio.gather(
        *(h.runner.claim("key-1", request, **ids) for h in (a, b, a, b, a, b))
    )
    owned = [c for c in claims if c.owned]
    assert len(owned) == 1
    assert {c.run_id for c in claims} == {owned[0].run_id}
    host = a if claims.index(owned[0]) % 2 == 0 else b
    run = await host.runner.start("count 2", claim=owned[0], **ids)
    model.release(2)
    results = await asyncio.gather(
        *(collect(h.runner.follow(c.run_id)) for h, c in zip((a, b) * 3, claims, strict=True))
    )
    assert all(r == results[0] for r in results)
    assert results[0][-1].data["reply"] == "w1 w2"
    assert model.calls == 1
    await run.wait()

    later = await b.runner.claim("key-1", request, **ids)
    assert not later.owned and later.result == results[0][-1].data
    with pytest.raises(IdempotencyKeyReused):
        await a.runner.claim("key-1", {**request, "message": "something else"}, **ids)
    other_user = await a.runner.claim("key-1", request, **{**ids, "user_id": "v"})
    assert other_user.owned


async def test_a_run_refused_at_once_releases_its_key_and_tells_its_followers(
    model: GatedModel,
) -> None:
    agent = Agent(name="a", model=model)
    async with Host(agent, store=MemoryStore(max_messages=None), policy="reject", runs=FAST) as h:
        ids: dict[str, Any] = {"tenant_id": "t", "user_id": "u", "session_id": "s"}
        busy = await h.runner.start("count 1", **ids)
        claim = await h.runner.claim("k", {"m": 1}, **ids)
        with pytest.raises(SessionBusy):
            await h.runner.start("count 1", claim=claim, **ids)
        events = await collect(h.runner.follow(claim.run_id))
        assert [(e.type, e.data.get("code")) for e in events] == [("error", "session_busy")]
        again = await h.runner.claim("k", {"m": 1}, **ids)
        assert again.owned and again.run_id != claim.run_id  # the key is free again
        model.release(1)
        await busy.wait()


async def test_runs_that_publish_nothing_are_read_once_they_end(model: GatedModel) -> None:
    agent = Agent(name="a", model=model)
    async with Host(agent, store=MemoryStore(max_messages=None), runs=FAST) as h:
        ids: dict[str, Any] = {"tenant_id": "t", "user_id": "u", "session_id": "s"}
        run = await h.runner.start("count 1", **ids)
        h.runner._local.clear()  # as seen from another process
        waiting = asyncio.create_task(collect(h.runner.follow(run.run_id)))
        model.release(1)
        await run.wait()
        (closing,) = await waiting  # only its end, once it ended
        assert (closing.seq, closing.type, closing.data["reply"]) == (1, "done", "w1")
        (again,) = await collect(h.runner.follow(run.run_id, after=7))
        assert again.seq == 8 and again.data == closing.data  # whatever id the reader had
        with pytest.raises(NotFound):
            await anext(h.runner.follow("run_unknown"))


async def test_closing_the_host_interrupts_its_background_runs_and_stores_why(
    model: GatedModel, tmp_path: Path
) -> None:
    agent = Agent(name="a", model=model)
    path = tmp_path / "close.db"
    host = Host(agent, store=SQLiteStore(path), runs=FAST)
    run = await host.runner.start(
        "count 3", tenant_id="t", user_id="u", session_id="s", publish=True
    )
    model.release(1)
    await anext(host.runner.follow(run.run_id))
    await host.close()
    async with Host(agent, store=SQLiteStore(path), runs=FAST) as other:
        stored = await other.get_run(run.run_id)
        assert stored is not None and stored.error == "the server shut down"
        events = await collect(other.runner.follow(run.run_id))
        assert [e.type for e in events] == ["delta", "done"]
        assert events[-1].data["status"] == "interrupted"
