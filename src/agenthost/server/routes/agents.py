"""The served agents: ``GET /v1/agents`` and ``POST /v1/agents/{agent}/chat``.

The chat route takes the same body as ``/v1/chat`` and addresses the turn to
one agent: a new session starts with it; an existing session continues with its
active agent when the named agent is that one or the one the session started
with (after a hand-off), and is refused with 409 otherwise (see
:mod:`agenthost.agents`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from starlette.responses import Response

from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.routes.chat import BACKGROUND_DOC, SSE_DOC, IdempotencyKey, converse
from agenthost.server.schemas import ERRORS, ID_PATTERN, AgentList, ChatRequest, ChatResponse

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=ERRORS)

AgentPath = Annotated[
    str, Path(min_length=1, max_length=255, pattern=ID_PATTERN, examples=["billing"])
]


@router.get("", response_model=AgentList, summary="The agents this server runs")
async def list_agents(host: CurrentHost, identity: CurrentIdentity) -> dict[str, Any]:
    return {"agents": host.agents.describe()}


@router.post(
    "/{agent}/chat",
    response_model=ChatResponse,
    responses={**SSE_DOC, **BACKGROUND_DOC},
    summary="Run one turn in the caller's session, addressed to one agent",
)
async def agent_chat(
    agent: AgentPath,
    body: ChatRequest,
    host: CurrentHost,
    identity: CurrentIdentity,
    settings: CurrentSettings,
    accept: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response | dict[str, Any]:
    return await converse(
        body, host, identity, settings, accept, agent=agent, idempotency_key=idempotency_key
    )
