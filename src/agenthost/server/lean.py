"""The lean route of the hot endpoint: ``POST /v1/chat`` without FastAPI's per-request work.

FastAPI solves a dependency graph and validates the response model on every
request; for the one endpoint that carries every turn this was most of the
server's CPU. The lean route does the same work by hand, once: the body is
validated by the same pydantic model (``ChatRequest.model_validate_json``,
errors raised as FastAPI's ``RequestValidationError`` so they keep their JSON
shape), the caller is identified by the same function the dependency uses
(:func:`agenthost.server.auth.identify`), the turn runs through the same
:func:`agenthost.server.routes.chat.converse`, and the reply is the full
``ChatResponse`` document, serialised with orjson. The documented FastAPI route
stays in the OpenAPI schema and ``/docs``; tests check that both answer alike.

:class:`LeanChat` serves it as plain ASGI, just inside the edge layers (request id,
CORS, path prefix): a ``POST /v1/chat`` does not pass through Starlette's and
FastAPI's middleware and router at all. What those layers do for it is done here
with the same parts: the body limit (:func:`agenthost.server.limits.read_body`),
the request metrics, and the app's exception handlers, looked up as Starlette's
exception middleware does. With tracing on (``--otel``), whose middleware reads
the request's ``traceparent``, the request takes the full stack and the route
mounted ahead of the documented one (:func:`install`).
"""

from __future__ import annotations

import inspect
import json
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agenthost.server.auth import bearer_token, identify
from agenthost.server.limits import read_body
from agenthost.server.metrics import StatusOf
from agenthost.server.routes.chat import converse
from agenthost.server.schemas import ChatRequest

if TYPE_CHECKING:
    from agenthost.server.metrics import Metrics


def chat_document(reply: dict[str, Any]) -> dict[str, Any]:
    """A turn's result as the ``ChatResponse`` schema renders it (every field present)."""
    return {
        "user_id": reply["user_id"],
        "session_id": reply["session_id"],
        "run_id": reply["run_id"],
        "reply": reply["reply"],
        "usage": reply["usage"],
        "status": reply.get("status", "completed"),
        "approvals": reply.get("approvals", []),
        "agent": reply.get("agent"),
        "model": reply.get("model"),
    }


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False  # FastAPI's strict content type: no type, no JSON
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _json_body(raw: bytes, content_type: str | None) -> Any:
    """The body as FastAPI reads a JSON body parameter (400 for malformed JSON)."""
    if not raw:
        return None
    if not _is_json(content_type):
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and Python's json takes: NaN, integers over 64 bits
            return json.loads(raw)
        except ValueError as exc:
            error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}
            raise RequestValidationError([error]) from exc


def _chat_request(value: Any) -> ChatRequest:
    """Validated by the model of the documented route, errors located as FastAPI does."""
    if value is None:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return ChatRequest.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


async def answer(state: Any, headers: Headers, raw: bytes) -> Response | bytes:
    """The turn a ``POST /v1/chat`` asks for: the reply document as JSON bytes, or the
    response to send (a stream, a background run's 202)."""
    # FastAPI's order: the body's JSON (400), then the credential (401), then the fields (422)
    value = _json_body(raw, headers.get("content-type"))
    identity = identify(
        state.authenticator,
        bearer_token(headers.get("authorization")),
        headers.get("x-user-id"),
        headers.get("x-tenant-id"),
    )
    body = _chat_request(value)
    result = await converse(
        body,
        state.host,
        identity,
        state.settings,
        headers.get("accept"),
        agent=None,
        idempotency_key=headers.get("idempotency-key"),
    )
    if isinstance(result, Response):
        return result
    return orjson.dumps(chat_document(result))


async def chat(request: Request) -> Response:
    request.scope["route"] = ROUTE  # what metrics and logs name the request by, as FastAPI does
    result = await answer(request.app.state, request.headers, await request.body())
    if isinstance(result, Response):
        return result
    return Response(result, media_type="application/json")


ROUTE = Route("/v1/chat", chat, methods=["POST"], include_in_schema=False)


def install(app: FastAPI) -> None:
    """Put the lean ``POST /v1/chat`` ahead of the documented one."""
    app.router.routes.insert(0, ROUTE)


def bypass(app: FastAPI, *, route: bool = False) -> None:
    """Serve ``POST /v1/chat`` through the full stack (before the app's first request):
    by the lean route if ``route``, else by the documented FastAPI route. For tests that
    hold the lean paths to the documented one."""
    app.state.lean_asgi = False
    if not route:
        app.router.routes.remove(ROUTE)


_JSON = (b"content-type", b"application/json")


class LeanChat:
    """Plain ASGI: ``POST /v1/chat`` to :func:`answer`; every other request to ``app``."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, metrics: Metrics, max_bytes: int) -> None:
        self.app = app
        self.fastapi = fastapi
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != scope.get("root_path", "") + "/v1/chat"
        ):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        scope["app"] = self.fastapi
        scope["route"] = ROUTE
        sent = StatusOf(send)
        try:
            raw = await read_body(scope, receive, sent, self.max_bytes)
            if raw is None:
                return
            try:
                result = await answer(self.fastapi.state, Headers(scope=scope), raw)
            except Exception as exc:
                result = await self._handled(scope, receive, exc)
            if isinstance(result, Response):
                await result(scope, receive, sent)
                return
            length = (b"content-length", str(len(result)).encode())
            await sent({"type": "http.response.start", "status": 200, "headers": [_JSON, length]})
            await sent({"type": "http.response.body", "body": result})
        except BaseException:
            sent.failed()
            raise
        finally:
            self.metrics.record_request(scope, ROUTE.path, sent.status, time.perf_counter() - began)

    async def _handled(self, scope: Scope, receive: Receive, exc: Exception) -> Response:
        """The response the app's exception handler for ``exc`` gives (the most specific
        one, as Starlette's exception middleware picks it; ``Exception``'s is the 500)."""
        handlers = self.fastapi.exception_handlers
        for kind in type(exc).__mro__:
            handler = handlers.get(kind)
            if handler is not None:
                response = handler(Request(scope, receive), exc)
                return await response if inspect.isawaitable(response) else response
        raise exc


__all__ = ["LeanChat", "answer", "chat", "chat_document", "install"]
