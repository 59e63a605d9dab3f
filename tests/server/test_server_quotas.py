"""Quotas and usage on every face: the own API (JSON and SSE), the seeds' ``/chat``, the
OpenAI-compatible API through the ``openai`` SDK, A2A as JSON-RPC errors (background
tasks included), the admin routes and ``/metrics``; on a real ``agenthost serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest

from agenthost import Agent, Host, Limits, Quotas, UsageMeter
from agenthost.protocols.a2a_mapping import QUOTA_EXCEEDED_CODE
from support.a2a_rpc import A2A, V03, V10, Family, conformance_agent, text
from support.agents import AGENT
from support.clock import FakeClock
from support.serve import KEYS, Server, bearer, sqlite_server, uid

CONFIG = """
[quotas.user]
requests_per_minute = 3

[[quotas.users]]
tenant_id = "acme"
user_id = "bob"
requests_per_minute = 0
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """api-keys auth; every user may start 3 turns a minute, except acme's bob."""
    tmp = tmp_path_factory.mktemp("quotas")
    (tmp / "quotas.toml").write_text(CONFIG)
    with sqlite_server(tmp, AGENT, "--config", str(tmp / "quotas.toml"), keyed=True) as server:
        yield server


def chat(server: Server, key: str, message: str = "hi", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat", json={"message": message, **body}, headers=bearer(key), timeout=30
    )


def test_every_face_refuses_with_429_retry_after_and_the_limit_named(limited: Server) -> None:
    assert chat(limited, "alice").status_code == 200
    seed = httpx.post(
        f"{limited.url}/chat",
        json={"user_id": "alice", "message": "hi"},
        headers=bearer("alice"),
        timeout=30,
    )
    assert seed.status_code == 200
    sdk = openai.OpenAI(base_url=f"{limited.url}/v1", api_key=KEYS["alice"], max_retries=0)
    with sdk:
        sdk.chat.completions.create(
            model="test-agent", messages=[{"role": "user", "content": "hi"}]
        )
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.chat.completions.create(
                model="test-agent", messages=[{"role": "user", "content": "one more"}]
            )
    assert refused.value.status_code == 429
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    error = refused.value.response.json()["error"]
    assert error["code"] == "rate_limited" and error["type"] == "rate_limit_error"
    assert error["param"] is None and "3 requests per minute" in error["message"]

    refused_chat = chat(limited, "alice")
    assert refused_chat.status_code == 429
    assert refused_chat.json()["error"]["code"] == "rate_limited"
    assert set(refused_chat.json()["error"]) >= {"code", "message"}
    assert "type" not in refused_chat.json()["error"]  # our own shape off the OpenAI routes
    assert int(refused_chat.headers["retry-after"]) >= 1
    stream = httpx.post(
        f"{limited.url}/v1/chat",
        json={"message": "hi", "stream": True},
        headers=bearer("alice"),
        timeout=30,
    )
    assert stream.status_code == 429 and "retry-after" in stream.headers
    seed = httpx.post(
        f"{limited.url}/chat",
        json={"user_id": "alice", "message": "hi"},
        headers=bearer("alice"),
        timeout=30,
    )
    assert seed.status_code == 429 and seed.json()["error"]["code"] == "rate_limited"
    rpc = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": V10.message(text("hi"))},
    }
    a2a = httpx.post(f"{limited.url}/a2a", json=rpc, headers=bearer("alice"), timeout=30)
    assert a2a.status_code == 200
    assert a2a.json()["error"]["code"] == -32029
    assert V10.details(a2a.json()["error"])["code"] == "rate_limited"
    for _ in range(5):  # bob's override lifts the limit
        assert chat(limited, "bob").status_code == 200


def test_usage_is_the_callers_own_and_an_admins_by_any_group(limited: Server) -> None:
    user = uid("metered")
    for _ in range(2):
        response = httpx.post(
            f"{limited.url}/v1/chat",
            json={"message": "My name is Ada", "user_id": user},
            headers=bearer("service"),
            timeout=30,
        )
        assert response.status_code == 200, response.text
    own = httpx.get(
        f"{limited.url}/v1/usage",
        params={"group_by": "model"},
        headers={**bearer("service"), "X-User-Id": user},
    )
    assert own.status_code == 200, own.text
    report = own.json()
    assert (report["tenant_id"], report["user_id"]) == ("acme", user)
    assert report["totals"]["turns"] == 2 and report["totals"]["input_tokens"] > 0
    assert [g["model"] for g in report["groups"]] == ["slow-when-asked"]
    assert httpx.get(f"{limited.url}/v1/admin/usage", headers=bearer("alice")).status_code == 403
    admin = httpx.get(
        f"{limited.url}/v1/admin/usage",
        params={"tenant_id": "acme", "group_by": "user_id,agent"},
        headers=bearer("admin"),
    )
    assert admin.status_code == 200, admin.text
    mine = [g for g in admin.json()["groups"] if g["user_id"] == user]
    assert [(g["agent"], g["turns"]) for g in mine] == [("test-agent", 2)]
    for params in ({"group_by": "user_id"}, {"since": "2024-02-02", "until": "2024-02-01"}):
        bad = httpx.get(f"{limited.url}/v1/usage", params=params, headers=bearer("bob"))
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["code"] == "invalid_input"
    metrics = httpx.get(f"{limited.url}/metrics").text
    assert 'agenthost_usage_turns_total{agent="test-agent",tenant="acme"}' in metrics
    assert 'agenthost_quota_refusals_total{code="rate_limited",level="user"}' in metrics
    assert user not in metrics  # users are never a label


def test_admins_set_and_remove_overrides(limited: Server) -> None:
    url = f"{limited.url}/v1/admin/quotas"
    assert httpx.get(url, headers=bearer("alice")).status_code == 403
    put = httpx.put(
        f"{url}/tenants/acme/users/eve", json={"requests_per_minute": 1}, headers=bearer("admin")
    )
    assert put.status_code == 200, put.text
    seen = httpx.get(f"{url}/tenants/acme/users/eve", headers=bearer("admin")).json()
    assert seen["user"]["requests_per_minute"] == 1
    overview = httpx.get(url, headers=bearer("admin")).json()
    assert overview["backend"] == "memory"
    assert overview["defaults"]["user"]["requests_per_minute"] == 3
    assert {"tenant_id": "acme", "user_id": "eve", "limits": put.json()} in overview["users"]
    for body in ({"requests_per_minute": -1}, {"rpm": 3}, {"requests_per_minute": "many"}):
        bad = httpx.put(f"{url}/tenants/acme/users/eve", json=body, headers=bearer("admin"))
        assert bad.status_code == 422, bad.text
    first = chat(limited, "service", user_id="eve")
    assert first.status_code == 200
    assert chat(limited, "service", user_id="eve").status_code == 429
    removed = httpx.delete(f"{url}/tenants/acme/users/eve", headers=bearer("admin"))
    assert removed.json() == {"removed": True}
    assert chat(limited, "service", user_id="eve").status_code == 200  # the default 3 again
    tenant = httpx.put(
        f"{url}/tenants/acme", json={"tenant": {"tokens_per_day": 5}}, headers=bearer("admin")
    )
    assert tenant.status_code == 200, tenant.text
    spent = chat(limited, "bob", "a long enough message to spend some tokens")
    assert spent.status_code == 200
    broke = chat(limited, "bob")
    assert broke.status_code == 429
    assert broke.json()["error"]["code"] == "token_budget_exhausted"
    assert httpx.delete(f"{url}/tenants/acme", headers=bearer("admin")).json() == {"removed": True}
    assert chat(limited, "bob").status_code == 200


# -- A2A: background tasks hold a turn; a refusal is the request's JSON-RPC error ------


@asynccontextmanager
async def a2a_with(limits: Limits) -> AsyncIterator[A2A]:
    """An in-process app on a memory store whose every user has ``limits``."""
    from agenthost.server import create_app
    from agenthost.settings import Settings

    clock = FakeClock(1_000.0)
    host = Host(
        Agent(name=conformance_agent.name, model=conformance_agent.model),
        clock=clock,
        cleanup_interval=None,
        quotas=Quotas(user=limits),
        usage=UsageMeter(flush_interval=0),
    )
    app = create_app(Settings.load({"store": "memory://"}), host=host)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://a2a.test") as http,
    ):
        yield A2A(http, app, clock)


@pytest.fixture
async def a2a() -> AsyncIterator[A2A]:
    async with a2a_with(Limits(concurrent_turns=1)) as endpoint:
        yield endpoint


LIMITS = {  # each limit, and what reaches it for user alice
    "rate_limited": Limits(requests_per_minute=1),
    "too_many_concurrent_turns": Limits(concurrent_turns=1),
    "token_budget_exhausted": Limits(tokens_per_day=1),
}
HOW = ("send", "stream", "background")


async def reach(endpoint: A2A, code: str) -> None:
    """Bring alice to the limit ``code`` names (see :data:`LIMITS`)."""
    if code == "too_many_concurrent_turns":
        await endpoint.working()  # holds alice's one turn
    else:
        await endpoint.send(text("hi"))  # one request, and some tokens spent


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("code", LIMITS)
@pytest.mark.parametrize("family", [V10, V03], ids=lambda f: f.name)
async def test_a2a_refuses_each_limit_with_one_documented_error_in_both_versions(
    family: Family, code: str, how: str
) -> None:
    async with a2a_with(LIMITS[code]) as endpoint:
        await reach(endpoint, code)
        params: dict[str, Any] = {"message": family.message(text("one more"))}
        if how == "background":  # v1.0 returnImmediately, v0.3 blocking: false
            params["configuration"] = (
                {"blocking": False} if family.v03 else {"returnImmediately": True}
            )
        method = family.stream if how == "stream" else family.send
        error = await endpoint.error(method, params)
        assert error["code"] == QUOTA_EXCEEDED_CODE == -32029
        details = family.details(error)
        assert details["code"] == code and details["scope"] == "user"
        assert details["limit"] == 1 and isinstance(details["retryAfter"], int)
        assert details["retryAfter"] >= 1
        if not family.v03:
            assert error["data"][0]["reason"] == "RESOURCE_EXHAUSTED"
        listed = await endpoint.result("ListTasks", {})
        assert len(listed["tasks"]) == 1  # the refused request left no task
        assert await endpoint.result(family.send, params, user="bob")  # bob has his own


@pytest.mark.parametrize("face", ["openai", "openai-stream", "chat", "v1-chat"])
@pytest.mark.parametrize("code", LIMITS)
async def test_http_faces_refuse_each_limit_with_429_and_the_limit_named(
    code: str, face: str
) -> None:
    async with a2a_with(LIMITS[code]) as endpoint:
        await reach(endpoint, code)
        alice = {"X-User-Id": "alice"}
        if face.startswith("openai"):  # the SDK reads 429 as RateLimitError (see above)
            body = {
                "model": conformance_agent.name,
                "messages": [{"role": "user", "content": "one more"}],
                "stream": face == "openai-stream",
            }
            response = await endpoint.http.post("/v1/chat/completions", json=body, headers=alice)
            error = response.json()["error"]
            kind = "insufficient_quota" if code == "token_budget_exhausted" else "rate_limit_error"
            assert (error["type"], error["param"]) == (kind, None)  # OpenAI's shape
        else:
            path, body = ("/chat", {"user_id": "alice"}) if face == "chat" else ("/v1/chat", {})
            response = await endpoint.http.post(
                path, json={**body, "message": "one more"}, headers=alice
            )
            error = response.json()["error"]
            assert "type" not in error  # our own shape
        assert response.status_code == 429
        assert error["code"] == code and "limit of 1" in error["message"]
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("family", [V10, V03], ids=lambda f: f.name)
async def test_a2a_background_tasks_count_as_running_turns(a2a: A2A, family: Family) -> None:
    first = await a2a.working()  # returnImmediately: the turn runs in the background
    params = {
        "message": family.message(text("hello")),
        "configuration": {"returnImmediately": True},
    }
    error = await a2a.error(family.send, params)
    details = family.details(error)
    assert details["code"] == "too_many_concurrent_turns" and details["retryAfter"] == 1
    assert error["code"] == -32029  # the same code in both versions
    assert "concurrent turns" in error["message"]
    other = await a2a.result(family.send, params, user="bob")  # bob has his own limit
    assert other
    await a2a.result(family.cancel, {"id": first["id"]})
    done = await a2a.result(family.send, {"message": family.message(text("hello again"))})
    task = family.task(done)
    assert task["status"]["state"] == family.state("TASK_STATE_COMPLETED")


async def test_a2a_refusals_leave_no_task_behind(a2a: A2A) -> None:
    await a2a.working()
    params = {"message": V10.message(text("hi"), message_id="refused-1")}
    await a2a.error("SendMessage", params)
    listed = await a2a.result("ListTasks", {})
    assert len(listed["tasks"]) == 1
