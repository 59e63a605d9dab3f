"""``POST /v1/chat`` (JSON or Server-Sent Events) and the seeds' ``POST /chat``.

Both name no agent: a session continues with its active agent, a new one starts
with the default agent (``/v1/agents/{agent}/chat`` names one).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header
from starlette.responses import Response

from agenthost.host import Host
from agenthost.keys import DEFAULT_ID
from agenthost.server.auth import Identity
from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.requestid import current_request_id
from agenthost.server.schemas import (
    ERRORS,
    ChatRequest,
    ChatResponse,
    SeedChatRequest,
    SeedChatResponse,
)
from agenthost.server.sse import event_stream
from agenthost.settings import Settings

router = APIRouter(tags=["chat"])
log = logging.getLogger("agenthost.content")

SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": 'event: delta\ndata: {"type":"delta","text":"Hi"}\n\n',
            }
        },
        "description": "JSON, or Server-Sent Events (delta, tool_call, tool_result, "
        "approval_required, handoff, done, error) when streaming",
    },
}


def wants_stream(flag: bool, accept: str | None) -> bool:
    return flag or "text/event-stream" in (accept or "")


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses={**ERRORS, **SSE_DOC},
    summary="Run one turn in the caller's session",
)
async def chat(
    body: ChatRequest,
    host: CurrentHost,
    identity: CurrentIdentity,
    settings: CurrentSettings,
    accept: Annotated[str | None, Header()] = None,
) -> Response | dict[str, Any]:
    return await converse(body, host, identity, settings, accept, agent=None)


async def converse(
    body: ChatRequest,
    host: Host,
    identity: Identity,
    settings: Settings,
    accept: str | None,
    *,
    agent: str | None,
) -> Response | dict[str, Any]:
    """One turn for ``/v1/chat`` and ``/v1/agents/{agent}/chat``."""
    who = identity.principal(body.user_id)
    session_id = body.session_id or DEFAULT_ID
    if settings.log_content:
        log.debug("message", extra={"fields": {"user_id": who.user_id, "text": body.message}})
    if wants_stream(body.stream, accept):
        events = host.stream(
            body.message,
            tenant_id=who.tenant_id,
            user_id=who.user_id,
            session_id=session_id,
            config=body.config,
            time_limit=body.timeout,
            request_id=current_request_id(),
            agent=agent,
        )
        return await event_stream(events)
    result = await host.run(
        body.message,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        session_id=session_id,
        config=body.config,
        time_limit=body.timeout,
        request_id=current_request_id(),
        agent=agent,
    )
    if settings.log_content:
        log.debug("reply", extra={"fields": {"run_id": result.run_id, "text": result.reply}})
    return result.to_dict()


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
