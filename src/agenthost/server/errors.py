"""The one place where errors become HTTP responses: ``{"error": {"code", "message"}}``,
plus the ``request_id`` of the request (see :mod:`agenthost.server.requestid`).

Every :class:`agenthost.errors.AgentHostError` maps to a status by class;
request validation failures are 422 (400 for a body that is not JSON);
Starlette's own HTTP errors keep their status; anything else is a 500 whose
body says nothing about the failure (the server log has the traceback).

A refused quota (:class:`~agenthost.errors.QuotaExceeded`) is 429 with a
``Retry-After`` header (whole seconds) when it is known. Routes of the
OpenAI-compatible API answer in OpenAI's error shape, which adds ``type`` and
``param`` to ours (``{"error": {"message", "type", "param", "code"}}``), so the
``openai`` SDK raises its own typed errors (``RateLimitError`` for a 429).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agenthost.errors import (
    AgentHostError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    MissingExtra,
    ModelError,
    NotFound,
    QuotaExceeded,
    SessionBusy,
    StoreUnavailable,
    TokenBudgetExhausted,
    ToolError,
    TurnTimeout,
    Unauthorized,
)
from agenthost.server.requestid import current_request_id

log = logging.getLogger("agenthost.server")

STATUS: dict[type[AgentHostError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    SessionBusy: 409,
    Conflict: 409,
    QuotaExceeded: 429,
    Unauthorized: 401,
    Forbidden: 403,
    ModelError: 503,
    TurnTimeout: 504,
    StoreUnavailable: 503,
    ToolError: 502,
    ConfigError: 500,
    MissingExtra: 501,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "quota_exceeded",
    503: "unavailable",
}


def status_for(exc: AgentHostError) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_body(code: str, message: str) -> dict[str, Any]:
    """``{"error": {"code", "message", "request_id"}}``; the request id (when serving one)
    is what a user quotes to an operator, who finds it in every log line of the request."""
    request_id = current_request_id()
    if request_id is None:
        return {"error": {"code": code, "message": message}}
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def retry_after(exc: QuotaExceeded) -> str | None:
    """The ``Retry-After`` value for a refused quota: whole seconds, at least 1."""
    if exc.retry_after is None:
        return None
    return str(max(1, math.ceil(exc.retry_after)))


def from_exception(exc: AgentHostError, *, openai: bool = False) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, QuotaExceeded) and (after := retry_after(exc)) is not None:
        headers["Retry-After"] = after
    if status >= 500:
        log.warning("request failed: %s: %s", exc.code, exc.message)
    if openai:
        param = exc.field if isinstance(exc, InvalidInput) else None
        kind = "insufficient_quota" if isinstance(exc, TokenBudgetExhausted) else None
        return openai_response(status, exc.code, exc.message, headers, kind=kind, param=param)
    return error_response(status, exc.code, exc.message, headers or None)


# -- OpenAI's error shape, on the OpenAI-compatible routes ----------------------------

OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def is_openai(request: Request) -> bool:
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):  # served under a path prefix
        path = path[len(root) :]
    return path.startswith(OPENAI_PATHS)


def openai_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    kind: str | None = None,
    param: str | None = None,
) -> JSONResponse:
    """Our error body with OpenAI's ``type`` and ``param`` added."""
    body = error_body(code, message)
    body["error"].update(type=kind or openai_type(status), param=param)
    return JSONResponse(body, status_code=status, headers=headers or None)


def _respond(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if is_openai(request):
        return openai_response(status, code, message, headers)
    return error_response(status, code, message, headers)


async def _agenthost_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentHostError)
    return from_exception(exc, openai=is_openai(request))


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    if error.get("type") == "extra_forbidden":
        return f"unknown field {where!r}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _respond(request, 400, "malformed_json", "the request body is not valid JSON")
    # Only locations and messages: the offending input is never echoed back.
    message = "; ".join(_describe(e) for e in errors[:10]) or "invalid request"
    return _respond(request, 422, "invalid_input", message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return _respond(request, exc.status_code, code, detail, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
    )
    return _respond(request, 500, "internal_error", "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AgentHostError, _agenthost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
