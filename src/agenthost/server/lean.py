"""The lean route of the hot endpoint: ``POST /v1/chat`` without FastAPI's per-request work.

FastAPI solves a dependency graph and validates the response model on every
request; for the one endpoint that carries every turn this was most of the
server's CPU. The lean route does the same work by hand, once: the body is
validated by the same pydantic model (``ChatRequest.model_validate_json``,
errors raised as FastAPI's ``RequestValidationError`` so they keep their JSON
shape), the caller is identified by the same function the dependency uses
(:func:`agenthost.server.auth.identify`), the turn runs through the same
:func:`agenthost.server.routes.chat.converse`, and the reply is the full
``ChatResponse`` document, serialised with orjson. It is mounted ahead of the
documented FastAPI route, which stays in the OpenAPI schema and ``/docs``;
middleware (request ids, CORS, limits, metrics) and error handlers apply as to
every route. Tests check that both routes answer alike.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agenthost.server.auth import bearer_token, identify
from agenthost.server.routes.chat import converse
from agenthost.server.schemas import ChatRequest


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


async def chat(request: Request) -> Response:
    request.scope["route"] = ROUTE  # what metrics and logs name the request by, as FastAPI does
    state = request.app.state
    headers = request.headers
    # FastAPI's order: the body's JSON (400), then the credential (401), then the fields (422)
    value = _json_body(await request.body(), headers.get("content-type"))
    identity = identify(
        state.authenticator,
        bearer_token(headers.get("authorization")),
        headers.get("x-user-id"),
        headers.get("x-tenant-id"),
    )
    body = _chat_request(value)
    answer = await converse(
        body,
        state.host,
        identity,
        state.settings,
        headers.get("accept"),
        agent=None,
        idempotency_key=headers.get("idempotency-key"),
    )
    if isinstance(answer, Response):
        return answer
    return Response(orjson.dumps(chat_document(answer)), media_type="application/json")


ROUTE = Route("/v1/chat", chat, methods=["POST"], include_in_schema=False)


def install(app: FastAPI) -> None:
    """Put the lean ``POST /v1/chat`` ahead of the documented one."""
    app.router.routes.insert(0, ROUTE)


__all__ = ["chat", "chat_document", "install"]
