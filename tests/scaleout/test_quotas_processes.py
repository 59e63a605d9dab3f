"""Quotas and usage across two real ``agenthost serve`` processes sharing one store.

Requests go to either process at random over fresh connections, as a load balancer
without sticky sessions would send them: a limit holds for the deployment, not per
process, and usage adds up exactly whichever process served a turn.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from agenthost.usage import ERASED_USER
from support.processes import ServeProcess, launch, opened
from support.services import redis_url, unique, with_query

DEADLINE = 60.0
LIMIT = 40


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"{unique('quotas')}.toml"
    path.write_text(text)
    return str(path)


async def _storm(urls: list[str], user: str, count: int) -> Counter[int]:
    """``count`` turns of ``user`` at once, each to a random process."""
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=DEADLINE, limits=limits) as client:

        async def one(n: int) -> int:
            body = {"message": f"turn {n}", "user_id": user, "session_id": f"s{n}"}
            response = await client.post(f"{rng.choice(urls)}/v1/chat", json=body)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "rate_limited"
                assert 1 <= int(response.headers["retry-after"]) <= 60
            else:
                assert response.status_code == 200, response.text
            return response.status_code

        return Counter(await asyncio.gather(*(one(n) for n in range(count))))


async def test_a_rate_limit_holds_across_two_processes_on_redis(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    coordination = with_query(redis_url(), prefix=unique("quota-scaleout"))
    toml = config(tmp_path, f"[quotas.user]\nrequests_per_minute = {LIMIT}\n")
    processes = await launch(
        servers, tmp_path, 2, "--store", pg_url, "--coordination", coordination, "--config", toml
    )
    statuses = await _storm([p.url for p in processes], "crowd", 200)
    assert statuses == {200: LIMIT, 429: 200 - LIMIT}
    again = await _storm([p.url for p in processes], "someone-else", 5)
    assert again == {200: 5}


async def test_a_rate_limit_holds_across_two_processes_on_postgresql_alone(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    toml = config(tmp_path, f"[quotas.user]\nrequests_per_minute = {LIMIT}\n")
    processes = await launch(servers, tmp_path, 2, "--store", pg_url, "--config", toml)
    statuses = await _storm([p.url for p in processes], "crowd", 200)
    assert statuses == {200: LIMIT, 429: 200 - LIMIT}


async def test_an_override_set_on_one_process_applies_on_the_other(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    toml = config(tmp_path, "[quotas]\nrefresh_seconds = 0.2\n")
    setter, other = await launch(servers, tmp_path, 2, "--store", pg_url, "--config", toml)
    async with httpx.AsyncClient(timeout=DEADLINE) as client:
        body = {"message": "hi", "user_id": "late"}
        assert (await client.post(f"{other.url}/v1/chat", json=body)).status_code == 200
        put = await client.put(
            f"{setter.url}/v1/admin/quotas/tenants/default/users/late",
            json={"tokens_per_day": 1},
        )
        assert put.status_code == 200, put.text
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while True:  # the other process re-reads overrides every 0.2 s
            response = await client.post(f"{other.url}/v1/chat", json=body)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "token_budget_exhausted"
                break
            assert response.status_code == 200, response.text
            assert asyncio.get_running_loop().time() < deadline, "the override never arrived"
        removed = await client.delete(f"{setter.url}/v1/admin/quotas/tenants/default/users/late")
        assert removed.json() == {"removed": True}


async def test_usage_totals_are_exact_across_two_processes(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    processes = await launch(servers, tmp_path, 2, "--store", pg_url)
    urls = [p.url for p in processes]
    rng = random.Random(11)
    users = ["ann", "ben", "cid"]
    async with httpx.AsyncClient(timeout=DEADLINE) as client:

        async def turn(n: int) -> None:
            body = {"message": f"My name is {users[n % 3]} {n}", "user_id": users[n % 3]}
            body["session_id"] = f"s{n % 7}"
            response = await client.post(f"{rng.choice(urls)}/v1/chat", json=body)
            assert response.status_code == 200, response.text

        await asyncio.gather(*(turn(n) for n in range(90)))

        store = await opened(pg_url)
        try:
            expected: dict[str, tuple[int, int, int]] = {}
            for user in users:
                runs = [
                    run
                    for record in await store.sessions(tenant_id="default", user_id=user)
                    for run in await store.runs(record.key, limit=1000)
                ]
                expected[user] = (
                    len(runs),
                    sum(r.usage.input_tokens for r in runs),
                    sum(r.usage.output_tokens for r in runs),
                )
        finally:
            await store.close()
        assert sum(turns for turns, _, _ in expected.values()) == 90

        async def report(url: str) -> dict[str, tuple[int, int, int]]:
            response = await client.get(f"{url}/v1/admin/usage", params={"group_by": "user_id"})
            assert response.status_code == 200, response.text
            return {
                g["user_id"]: (g["turns"], g["input_tokens"], g["output_tokens"])
                for g in response.json()["groups"]
            }

        deadline = asyncio.get_running_loop().time() + DEADLINE
        while (seen := await report(urls[0])) != expected:  # each process flushes every 1 s
            for user, counts in seen.items():  # never more than was spent
                assert all(a <= b for a, b in zip(counts, expected[user], strict=True)), seen
            assert asyncio.get_running_loop().time() < deadline, (seen, expected)
            await asyncio.sleep(0.2)
        assert await report(urls[1]) == expected
        own = await client.get(f"{urls[1]}/v1/usage", headers={"X-User-Id": "ben"})
        assert own.json()["totals"]["turns"] == expected["ben"][0]


async def test_concurrent_turns_hold_across_two_processes(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    coordination = with_query(redis_url(), prefix=unique("quota-turns"))
    toml = config(tmp_path, "[quotas.user]\nconcurrent_turns = 5\n")
    processes = await launch(
        servers,
        tmp_path,
        2,
        "--store",
        pg_url,
        "--coordination",
        coordination,
        "--config",
        toml,
        "--model",
        "offline:300ms",
    )
    rng = random.Random(5)
    async with httpx.AsyncClient(timeout=DEADLINE) as client:

        async def one(n: int) -> int:
            body = {"message": f"turn {n}", "user_id": "busy", "session_id": f"s{n}"}
            response = await client.post(f"{rng.choice(processes).url}/v1/chat", json=body)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "too_many_concurrent_turns"
            else:
                assert response.status_code == 200, response.text
            return response.status_code

        statuses = Counter(await asyncio.gather(*(one(n) for n in range(60))))
    assert statuses[200] >= 5 and statuses[429] > 0
    store = await opened(pg_url)
    try:
        runs = [
            run
            for record in await store.sessions(tenant_id="default", user_id="busy")
            for run in await store.runs(record.key, limit=100)
        ]
    finally:
        await store.close()
    assert len(runs) == statuses[200]
    edges = sorted(
        [(r.started_at, 1) for r in runs] + [(r.finished_at or r.started_at, -1) for r in runs]
    )
    running = peak = 0
    for _, step in edges:  # ends sort before starts at the same instant
        running += step
        peak = max(peak, running)
    assert peak <= 5


async def test_migrate_creates_the_quota_and_usage_tables(pg_url: str) -> None:
    from agenthost.cli import main
    from agenthost.errors import StoreUnavailable
    from agenthost.quotas import Check
    from agenthost.quotas.postgres import PostgresQuotaBackend
    from agenthost.usage import PostgresUsageLedger, UsageRow

    url = with_query(pg_url, migrate="false")  # the application may not change the schema
    check = Check("rate", "u", 5, "token", 60, "user")
    backend, ledger = PostgresQuotaBackend(url), PostgresUsageLedger(url)
    try:
        try:
            await backend.admit([check])
            raise AssertionError("admitted without the quota tables")
        except StoreUnavailable:
            pass
        assert await asyncio.to_thread(main, ["migrate", "--store", pg_url]) == 0
        assert await backend.admit([check]) is None
        await ledger.add([UsageRow("2024-01-01", "t", "u", "a", "m", 1)], batch="b")
        (row,) = await ledger.query(since="2024-01-01", until="2024-01-01")
        assert row.turns == 1
    finally:
        await backend.close()
        await ledger.close()


async def spent(store_url: str, users: list[str]) -> tuple[int, int, int]:
    """Turns, input and output tokens of ``users`` (tenant default), from their runs."""
    store = await opened(store_url)
    try:
        runs = [
            run
            for user in users
            for record in await store.sessions(tenant_id="default", user_id=user)
            for run in await store.runs(record.key, limit=1000)
        ]
    finally:
        await store.close()
    return (
        len(runs),
        sum(r.usage.input_tokens for r in runs),
        sum(r.usage.output_tokens for r in runs),
    )


async def test_an_erased_user_leaves_the_usage_ledger_and_the_tenant_totals_stand(
    pg_url: str, servers: list[ServeProcess], tmp_path: Path
) -> None:
    processes = await launch(servers, tmp_path, 2, "--store", pg_url)
    first, second = (p.url for p in processes)
    async with httpx.AsyncClient(timeout=DEADLINE) as client:

        async def turn(url: str, user: str, n: int) -> None:
            body = {"message": f"My name is {user} {n}", "user_id": user, "session_id": f"s{n}"}
            response = await client.post(f"{url}/v1/chat", json=body)
            assert response.status_code == 200, response.text

        async def by_user(url: str) -> tuple[dict[str, Any], dict[str, int]]:
            """The tenant's totals and turns per user, read through ``url``."""
            params = {"tenant_id": "default", "group_by": "user_id"}
            response = await client.get(f"{url}/v1/usage", params=params)
            assert response.status_code == 200, response.text
            report = response.json()
            return report["totals"], {g["user_id"]: g["turns"] for g in report["groups"]}

        async def settled(url: str, turns: int) -> tuple[dict[str, Any], dict[str, int]]:
            """The report once every process has flushed ``turns`` turns (each does every
            second), never showing the erased user on the way."""
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while True:
                totals, users = await by_user(url)
                if erased:
                    assert "dan" not in users, users
                if totals["turns"] == turns:
                    return totals, users
                assert asyncio.get_running_loop().time() < deadline, (totals, users)
                await asyncio.sleep(0.2)

        erased = False
        await asyncio.gather(
            *(turn(first if n % 2 else second, "dan", n) for n in range(6)),
            *(turn(second, "eve", n) for n in range(4)),
        )
        _, users = await settled(second, 10)
        assert users == {"dan": 6, "eve": 4}
        await turn(second, "dan", 6)  # counted by the second process, not flushed yet
        expected = await spent(pg_url, ["dan", "eve"])  # what the run records say
        erase = await client.delete(f"{first}/v1/users/dan")
        assert erase.status_code == 200, erase.text
        erased = True
        totals, users = await settled(second, 11)  # the late count lands as "(erased)" too
        assert users == {ERASED_USER: 7, "eve": 4}
        assert (totals["turns"], totals["input_tokens"], totals["output_tokens"]) == expected
        assert await by_user(first) == (totals, users)
        own = await client.get(f"{first}/v1/usage", headers={"X-User-Id": "dan"})
        assert own.json()["totals"]["turns"] == 0  # nothing left under dan's name
        export = await client.get(f"{second}/v1/users/dan/export")
        assert export.json()["sessions"] == []
