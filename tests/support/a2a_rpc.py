"""Raw JSON-RPC against the A2A endpoint of an in-process app, in both method-name families.

:class:`Family` knows how v1.0 (``SendMessage``, ``TASK_STATE_COMPLETED``, error
details as a list of ``google.rpc.ErrorInfo``) and v0.3 (``message/send``,
``completed``, error ``data`` as an object) spell the same request and answer,
so one test body checks both. :class:`A2A` drives a real ``create_app`` app
through httpx's ASGI transport, on a fake clock, with a model that can be slow
("slow ...") or fail ("fail ...").
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from agenthost import Agent, Host, ModelRequest
from agenthost.models import ModelChunk
from agenthost.server import create_app
from agenthost.settings import Settings
from support.agents import SlowWhenAsked
from support.clock import FakeClock


class SlowOrFailing(SlowWhenAsked):
    """The protocol tests' model, and one that breaks when the user's message starts "fail"."""

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "user" and last.content.startswith("fail"):
            raise RuntimeError("the model broke")
        async for chunk in super().stream(request):
            yield chunk


conformance_agent = Agent(name="conformance-agent", model=SlowOrFailing())


@dataclass(frozen=True)
class Family:
    """One generation of A2A method names and wire shapes."""

    name: str
    send: str
    stream: str
    get: str
    cancel: str
    extended_card: str

    @property
    def v03(self) -> bool:
        return self.name == "0.3"

    def message(
        self,
        *parts: dict[str, Any],
        message_id: str = "",
        context_id: str = "",
        task_id: str = "",
    ) -> dict[str, Any]:
        """A user message; ``parts`` in v1.0 form ({"text"} or {"data"})."""
        out: dict[str, Any] = {"messageId": message_id or f"m-{next(_ids)}"}
        if self.v03:
            out |= {"kind": "message", "role": "user"}
            out["parts"] = [{"kind": "text" if "text" in p else "data", **p} for p in parts]
        else:
            out |= {"role": "ROLE_USER", "parts": list(parts)}
        if context_id:
            out["contextId"] = context_id
        if task_id:
            out["taskId"] = task_id
        return out

    def task(self, result: dict[str, Any]) -> dict[str, Any]:
        """The task in a send result (v1.0 wraps it in ``{"task": ...}``)."""
        task: dict[str, Any] = result if self.v03 else result["task"]
        return task

    def state(self, v10_name: str) -> str:
        """``TASK_STATE_INPUT_REQUIRED`` as this family writes it."""
        if not self.v03:
            return v10_name
        return v10_name.removeprefix("TASK_STATE_").lower().replace("_", "-")

    def details(self, error: dict[str, Any]) -> dict[str, Any]:
        """An error's structured details (v1.0: the ErrorInfo's metadata)."""
        data = error.get("data")
        if self.v03:
            return data or {}
        assert isinstance(data, list) and data[0]["@type"].endswith("google.rpc.ErrorInfo")
        metadata: dict[str, Any] = data[0]["metadata"]
        return metadata


V10 = Family("1.0", "SendMessage", "SendStreamingMessage", "GetTask", "CancelTask",
             "GetExtendedAgentCard")  # fmt: skip
V03 = Family("0.3", "message/send", "message/stream", "tasks/get", "tasks/cancel",
             "agent/getAuthenticatedExtendedCard")  # fmt: skip
FAMILIES = [V10, V03]
_ids = itertools.count(1)


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def data(value: Any) -> dict[str, Any]:
    return {"data": value}


class A2A:
    """The endpoint of one app, called as ``user`` (``--auth none``: the X-User-Id header)."""

    def __init__(self, http: httpx.AsyncClient, app: FastAPI, clock: FakeClock) -> None:
        self.http = http
        self.app = app
        self.clock = clock

    async def post(self, content: bytes, *, user: str = "alice") -> dict[str, Any]:
        """A raw body; the JSON-RPC response (always HTTP 200). From a stream, its first
        event: v0.3 streams report an error that way (v1.0 answers it before streaming)."""
        headers = {"Content-Type": "application/json", "X-User-Id": user}
        response = await self.http.post("/a2a", content=content, headers=headers)
        assert response.status_code == 200, response.text
        if response.headers["content-type"].startswith("text/event-stream"):
            frames = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
            first: dict[str, Any] = json.loads(frames[0])
            return first
        body: dict[str, Any] = response.json()
        return body

    async def call(self, method: str, params: Any, *, user: str = "alice") -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
        reply = await self.post(json.dumps(body).encode(), user=user)
        assert reply["id"] == body["id"]
        return reply

    async def result(self, method: str, params: Any, **kw: Any) -> dict[str, Any]:
        reply = await self.call(method, params, **kw)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def error(self, method: str, params: Any, **kw: Any) -> dict[str, Any]:
        reply = await self.call(method, params, **kw)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    # -- tasks in a given state (made through v1.0) --------------------------------------

    async def send(self, *parts: dict[str, Any], **ids: str) -> dict[str, Any]:
        """SendMessage, waiting for the end; the task."""
        result = await self.result("SendMessage", {"message": V10.message(*parts, **ids)})
        task: dict[str, Any] = result["task"]
        return task

    async def working(self, **ids: str) -> dict[str, Any]:
        """A task whose model is mid-turn ("thinking..." streamed, the end an hour away)."""
        params = {
            "message": V10.message(text("slow thoughts"), **ids),
            "configuration": {"returnImmediately": True},
        }
        task: dict[str, Any] = (await self.result("SendMessage", params))["task"]
        await self.thinking(task["id"])
        return task

    async def thinking(self, task_id: str) -> None:
        """Wait until the task's model has started (stored the user message, said something)."""
        async for event in self.app.state.host.runner.follow(task_id):
            if event.type == "delta":
                return

    async def canceled(self, **ids: str) -> dict[str, Any]:
        task = await self.working(**ids)
        return await self.result("CancelTask", {"id": task["id"]})


async def open_a2a(agent: Agent = conformance_agent) -> AsyncIterator[A2A]:
    """The app (memory store, ``--auth none``) on a fake clock at t=1000s; for fixtures."""
    clock = FakeClock(1_000.0)
    host = Host(agent, clock=clock, cleanup_interval=None)
    app = create_app(Settings.load({"store": "memory://"}), host=host)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://a2a.test") as http,
    ):
        yield A2A(http, app, clock)
