"""A small synchronous client of the agenthost HTTP API (the CLI's ``--url`` mode)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from agenthost.errors import AgentHostError, MissingExtra
from agenthost.keys import id_to_header

try:
    import httpx
except ModuleNotFoundError as exc:
    raise MissingExtra("client", "the HTTP client (agenthost.client, --url)") from exc

RUN_HEADER = "X-Agenthost-Run-Id"
TERMINAL = frozenset({"done", "error"})


class RemoteError(AgentHostError):
    """The server answered with an error: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Client:
    """Talks to one server as one user (``X-User-Id``), optionally with an API key or JWT."""

    def __init__(
        self,
        url: str,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        headers = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if user_id:
            headers["X-User-Id"] = id_to_header(user_id)
        if tenant_id:
            headers["X-Tenant-Id"] = id_to_header(tenant_id)
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.is_error:
            raise _error(response)
        return response.json()

    def _unreachable(self, exc: httpx.TransportError) -> RemoteError:
        reason = str(exc) or type(exc).__name__
        return RemoteError(0, "unreachable", f"cannot reach {self.http.base_url}: {reason}")

    def chat(
        self,
        message: str,
        *,
        session_id: str | None = None,
        config: dict[str, Any] | None = None,
        agent: str | None = None,
    ) -> dict[str, Any]:
        """One turn; ``agent`` addresses it to that agent (``/v1/agents/{agent}/chat``)."""
        body = _body(message=message, session_id=session_id, config=config)
        result: dict[str, Any] = self._call("POST", _chat_path(agent), json=body)
        return result

    def stream(
        self,
        message: str,
        *,
        session_id: str | None = None,
        agent: str | None = None,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The turn's events as dicts (``{"type": "delta", "text": ...}``, ..., ``done``).

        If the connection drops before the last event, the run is followed again at
        ``/v1/runs/{run_id}/events`` from the last event id received (the server keeps
        it running with ``--on-disconnect continue``; else it reports the interruption).
        """
        body = _body(message=message, session_id=session_id, stream=True)
        run_id: str | None = None
        after = 0
        try:
            with self.http.stream("POST", _chat_path(agent), json=body) as response:
                if response.is_error:
                    response.read()
                    raise _error(response)
                run_id = response.headers.get(RUN_HEADER)
                for event_id, data in _events(response):
                    after = event_id if event_id is not None else after
                    yield data
                    if data.get("type") in TERMINAL:
                        return
        except httpx.TransportError as exc:
            if run_id is None:
                raise self._unreachable(exc) from None
        if run_id is None:
            raise RemoteError(0, "connection_lost", "the stream ended before the turn finished")
        if on_reconnect is not None:
            on_reconnect(run_id)
        yield from self.follow(run_id, after=after)

    def follow(self, run_id: str, *, after: int = 0, attempts: int = 6) -> Iterator[dict[str, Any]]:
        """A run's events after event id ``after``, until its end; reconnects when dropped."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(after)}
            try:
                with self.http.stream(
                    "GET", f"/v1/runs/{run_id}/events", headers=headers
                ) as response:
                    if response.is_error:
                        response.read()
                        raise _error(response)
                    for event_id, data in _events(response):
                        after = event_id if event_id is not None else after
                        failures = 0
                        yield data
                        if data.get("type") in TERMINAL:
                            return
            except httpx.TransportError:
                pass
            failures += 1
            if failures >= attempts:
                raise RemoteError(
                    0, "connection_lost", f"lost the connection to run {run_id} {attempts} times"
                )
            time.sleep(min(0.2 * 2**failures, 5.0))

    def approve(self, session_id: str, call_id: str, approve: bool) -> dict[str, Any]:
        path = f"/v1/sessions/{_segment(session_id)}/approvals/{_segment(call_id)}"
        result: dict[str, Any] = self._call("POST", path, json={"approve": approve})
        return result

    def agents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/agents")["agents"]
        return result

    def sessions(self, *, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/sessions", params={"limit": limit})[
            "sessions"
        ]
        return result

    def session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/sessions/{_segment(session_id)}")
        return result

    def messages(self, session_id: str, *, page: int = 500) -> Iterator[dict[str, Any]]:
        after: int | None = 0
        while after is not None:
            params = {"after_seq": after, "limit": page}
            data = self._call("GET", f"/v1/sessions/{_segment(session_id)}/messages", params=params)
            yield from data["messages"]
            after = data["next_after_seq"]

    def memories(self, query: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """The user's memories, newest first, or the ones most relevant to ``query``."""
        params: dict[str, Any] = {"limit": limit} if query is None else {"limit": limit, "q": query}
        result: list[dict[str, Any]] = self._call("GET", "/v1/memories", params=params)["memories"]
        return result

    def delete_session(self, session_id: str) -> int:
        deleted: int = self._call("DELETE", f"/v1/sessions/{_segment(session_id)}")["deleted"]
        return deleted


def _events(response: httpx.Response) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """Server-Sent Events as (id, data): comments skipped, ``id:`` kept when sent."""
    event_id: int | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield event_id, json.loads("\n".join(data))
            event_id, data = None, []
        elif line.startswith("id:"):
            text = line[3:].strip()
            event_id = int(text) if text.isdigit() else None
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event_id, json.loads("\n".join(data))


def _segment(value: str) -> str:
    """An id as one path segment: every id is reachable, '/' and '%' included."""
    return quote(value, safe="")


def _chat_path(agent: str | None) -> str:
    return "/v1/chat" if agent is None else f"/v1/agents/{quote(agent, safe='')}/chat"


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _error(response: httpx.Response) -> RemoteError:
    try:
        error = response.json()["error"]
        return RemoteError(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return RemoteError(response.status_code, "http_error", f"HTTP {response.status_code}")
