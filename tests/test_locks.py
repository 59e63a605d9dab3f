"""``agenthost.locks``: FIFO mutual exclusion per key, refusal instead of queueing, and a
table that holds only keys a turn holds or waits for (a cancelled waiter leaves too)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agenthost.errors import SessionBusy
from agenthost.keys import SessionKey
from agenthost.locks import KeyedLocks, LocalCoordinator

A = SessionKey("t", "alice", "s")
B = SessionKey("t", "bob", "s")


async def settle(condition: Callable[[], bool], *, passes: int = 100) -> None:
    """Let the loop run until ``condition()`` holds (each step is one pass of the loop)."""
    for _ in range(passes):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_holders_of_one_key_run_one_at_a_time_in_arrival_order() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def turn(name: str) -> None:
        async with locks.hold(A):
            order.append(f"start {name}")
            if name == "t0":
                await release.wait()
            order.append(f"end {name}")

    tasks = [asyncio.create_task(turn(f"t{i}")) for i in range(4)]
    await settle(lambda: order == ["start t0"])
    assert len(locks) == 1  # one entry, however many wait on it
    release.set()
    await asyncio.gather(*tasks)
    assert order == [f"{edge} t{i}" for i in range(4) for edge in ("start", "end")]
    assert len(locks) == 0


async def test_other_keys_are_not_blocked() -> None:
    locks = KeyedLocks()
    async with locks.hold(A), locks.hold(B):  # would deadlock if keys shared a lock
        assert len(locks) == 2
    assert len(locks) == 0


async def test_wait_false_refuses_a_busy_key_and_leaves_the_table_as_it_was() -> None:
    locks = KeyedLocks()
    async with locks.hold(A):
        with pytest.raises(SessionBusy, match="'s' is busy"):
            async with locks.hold(A, wait=False):
                raise AssertionError("entered a busy key")
        async with locks.hold(B, wait=False):  # a free key is taken at once
            pass
        assert len(locks) == 1
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_no_entry_behind() -> None:
    locks = KeyedLocks()

    async def waiter() -> None:
        async with locks.hold(A):
            raise AssertionError("the waiter got the lock")

    async with locks.hold(A):
        task = asyncio.create_task(waiter())
        await settle(lambda: locks._entries[A].holders == 2)  # the waiter is queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(locks) == 1  # the holder's entry only
    assert len(locks) == 0


async def test_an_error_in_the_block_releases_the_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold(A):
            raise RuntimeError("turn failed")
    assert len(locks) == 0
    async with locks.hold(A, wait=False):
        pass


async def test_the_local_coordinator_orders_nothing_across_processes() -> None:
    coordinator = LocalCoordinator()
    assert coordinator.shared is False
    async with coordinator.hold(A, wait=False), coordinator.hold(A, wait=False):
        pass  # one process: the in-process lock is all the ordering there is
    await coordinator.close()
