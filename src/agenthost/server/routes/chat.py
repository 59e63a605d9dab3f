"""``POST /v1/chat`` (JSON, Server-Sent Events, or 202 for a background run) and the
seeds' ``POST /chat``.

Both name no agent: a session continues with its active agent, a new one starts
with the default agent (``/v1/agents/{agent}/chat`` names one).

Every turn of ``/v1/chat`` runs in a task of its own (``host.runner``), so it can
outlive its request: ``"background": true``, or a streaming client that leaves
when the server runs with ``--on-disconnect continue``. Such runs are published:
their events can be followed and resumed from any process at
``/v1/runs/{run_id}/events``. With an ``Idempotency-Key`` a retry gets the first
run's result (or follows it) instead of running the turn again.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header
from starlette.responses import JSONResponse, Response

from agenthost.errors import NotFound
from agenthost.host import Host
from agenthost.idempotency import Claim
from agenthost.keys import DEFAULT_ID
from agenthost.server.auth import Identity
from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.requestid import current_request_id
from agenthost.server.runstream import (
    chat_result,
    run_headers,
    started_by_request,
    stream_response,
)
from agenthost.server.schemas import (
    ERRORS,
    ChatRequest,
    ChatResponse,
    RunAccepted,
    SeedChatRequest,
    SeedChatResponse,
)
from agenthost.settings import Settings

router = APIRouter(tags=["chat"])
log = logging.getLogger("agenthost.content")

SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": 'event: delta\nid: 1\ndata: {"type":"delta","text":"Hi"}\n\n',
            }
        },
        "description": "JSON, or Server-Sent Events (delta, tool_call, tool_result, "
        "approval_required, handoff, done, error; each with an id) when streaming",
    },
}
BACKGROUND_DOC: dict[int | str, dict[str, Any]] = {
    202: {"model": RunAccepted, "description": 'with "background": true: the run started'},
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        description="Retries with the same key (and body) run the turn once: they get its "
        "result, or follow it while it runs. Scoped to the caller; remembered a day."
    ),
]


def wants_stream(flag: bool, accept: str | None) -> bool:
    return flag or "text/event-stream" in (accept or "")


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses={**ERRORS, **SSE_DOC, **BACKGROUND_DOC},
    summary="Run one turn in the caller's session",
)
async def chat(
    body: ChatRequest,
    host: CurrentHost,
    identity: CurrentIdentity,
    settings: CurrentSettings,
    accept: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response | dict[str, Any]:
    return await converse(
        body, host, identity, settings, accept, agent=None, idempotency_key=idempotency_key
    )


async def converse(
    body: ChatRequest,
    host: Host,
    identity: Identity,
    settings: Settings,
    accept: str | None,
    *,
    agent: str | None,
    idempotency_key: str | None = None,
) -> Response | dict[str, Any]:
    """One turn for ``/v1/chat`` and ``/v1/agents/{agent}/chat``."""
    who = identity.principal(body.user_id)
    ids: dict[str, Any] = {
        "tenant_id": who.tenant_id,
        "user_id": who.user_id,
        "session_id": body.session_id or DEFAULT_ID,
    }
    if settings.log_content:
        log.debug("message", extra={"fields": {"user_id": who.user_id, "text": body.message}})
    stream = wants_stream(body.stream, accept)
    claim = None
    if idempotency_key is not None:
        request = {
            "route": "chat",
            "agent": agent,
            "message": body.message,
            "session_id": ids["session_id"],
            "config": body.config,
        }
        claim = await host.runner.claim(idempotency_key, request, **ids)
        if not claim.owned:
            return await _retried(host, claim, stream=stream, background=body.background)
    detached = body.background or settings.on_disconnect == "continue"
    options: dict[str, Any] = {
        "config": body.config,
        "time_limit": body.timeout,
        "request_id": current_request_id(),
        "agent": agent,
        "publish": detached,
        "claim": claim,
        **ids,
    }
    if stream or body.background:
        run = await host.runner.start(body.message, **options)
        headers = run_headers(run.run_id)
        if body.background and not stream:
            return _accepted(run.run_id, who.user_id, ids["session_id"], headers)
        events = started_by_request(run, detached=detached)
        return stream_response(events, headers=headers)
    run = await host.runner.run(body.message, **options)  # in this request's task
    assert run.last is not None
    result = chat_result(run.last.data)
    if settings.log_content:
        log.debug("reply", extra={"fields": {"run_id": run.run_id, "text": result["reply"]}})
    return result


def _accepted(run_id: str, user_id: str, session_id: str, headers: dict[str, str]) -> Response:
    body = RunAccepted(run_id=run_id, user_id=user_id, session_id=session_id, status="running")
    headers = {**headers, "Location": f"/v1/runs/{run_id}"}
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


async def _retried(host: Host, claim: Claim, *, stream: bool, background: bool) -> Response:
    """A request whose key was claimed before: the first run's result, never a second run."""
    headers = run_headers(claim.run_id, replayed=True)
    key = claim.key
    if stream:
        return stream_response(host.runner.follow(claim.run_id), headers=headers)
    if background:
        return _accepted(claim.run_id, key.user_id, key.session_id, headers)
    result = claim.result
    if result is None:
        async for event in host.runner.follow(claim.run_id):
            result = event.data
    if result is None:
        raise NotFound(f"run {claim.run_id} of this idempotency key is gone")
    body = ChatResponse.model_validate(chat_result(result)).model_dump(mode="json")
    return JSONResponse(body, headers=headers)


@router.post(
    "/chat",
    response_model=SeedChatResponse,
    responses=ERRORS,
    summary="The seeds' chat shape: {user_id, message} -> {user_id, reply}",
)
async def seed_chat(
    body: SeedChatRequest, host: CurrentHost, identity: CurrentIdentity
) -> SeedChatResponse:
    who = identity.principal(body.user_id)
    result = await host.run(
        body.message,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        request_id=current_request_id(),
    )
    return SeedChatResponse(user_id=who.user_id, reply=result.reply)
