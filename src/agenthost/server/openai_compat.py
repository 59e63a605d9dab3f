"""OpenAI-compatible API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Each served agent is a model (its name is the model id; ``GET /v1/models`` lists
them). A stateful request is addressed to that agent like
``/v1/agents/{agent}/chat``: after a hand-off the session's new agent answers
(the completion's and each chunk's ``model`` say which agent speaks). Identity comes
from the server's auth like every route; the request's ``user`` field names the
user under ``--auth none`` or with a service key (a user key may name only its
own user). The session is ``X-Session-Id`` or ``metadata.session_id``, else the
user's default session. Only the new trailing user message(s) are stored; see
:mod:`agenthost.protocols.openai_chat` for how the client's copy of the
conversation is reconciled with the stored one. ``X-Agenthost-Stateless: 1``
runs exactly the client's messages and stores nothing.

Sampling fields (temperature, top_p, max_tokens) apply to stateless calls; a
session's own config (``PATCH /v1/sessions/{id}``) governs stateful ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

from fastapi import APIRouter, Header
from starlette.responses import JSONResponse, Response

from agenthost.errors import NotFound
from agenthost.events import Event
from agenthost.host import Host
from agenthost.keys import DEFAULT_ID, id_to_header
from agenthost.protocols import openai_chat as oc
from agenthost.server.auth import header_id
from agenthost.server.deps import CurrentHost, CurrentIdentity
from agenthost.server.requestid import current_request_id
from agenthost.server.schemas import ERRORS
from agenthost.server.sse import event_stream
from agenthost.turn import new_run_id

router = APIRouter(tags=["openai"], responses=ERRORS)

TRUE = frozenset({"1", "true", "yes", "on"})


class _Where(TypedDict):
    tenant_id: str
    user_id: str
    session_id: str


def _check_model(host: Host, model: str) -> None:
    if model not in host.agents:
        raise NotFound(f"model {model!r} is not served here; GET /v1/models lists the agents")


def _raw(chunk: bytes) -> bytes:
    return chunk


@router.get("/v1/models", summary="The served agents, as OpenAI models")
async def list_models(host: CurrentHost, identity: CurrentIdentity) -> dict[str, Any]:
    return oc.models_list(host.agents.names)


@router.get("/v1/models/{model}", summary="One served agent, as an OpenAI model")
async def get_model(model: str, host: CurrentHost, identity: CurrentIdentity) -> dict[str, Any]:
    _check_model(host, model)
    return oc.model_card(model)


@router.post(
    "/v1/chat/completions",
    summary="Chat Completions against the agent, in the caller's session",
    responses={
        200: {
            "description": "A chat.completion, or with stream=true Server-Sent Events of "
            "chat.completion.chunk ending in data: [DONE]",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def chat_completions(
    body: oc.ChatCompletionRequest,
    host: CurrentHost,
    identity: CurrentIdentity,
    x_session_id: Annotated[str | None, Header(description="The session to use")] = None,
    x_agenthost_stateless: Annotated[
        str | None, Header(description="1: use exactly these messages, store nothing")
    ] = None,
) -> Response:
    who = identity.principal(body.user)
    _check_model(host, body.model)
    oc.check_request(body)
    messages = oc.to_messages(body.messages)
    session_header = header_id(x_session_id, oc.SESSION_HEADER)
    session_id = oc.session_from(session_header, body.metadata) or DEFAULT_ID
    stateless = (x_agenthost_stateless or "").strip().lower() in TRUE
    where = _Where(tenant_id=who.tenant_id, user_id=who.user_id, session_id=session_id)
    if stateless:
        headers = {oc.STATELESS_HEADER: "1"}
        config = oc.sampling_config(body)
        agent = body.model
        if body.stream:
            return await _stream(
                body, host.stream_stateless(messages, config=config, agent=agent, **where), headers
            )
        result = await host.run_stateless(messages, config=config, agent=agent, **where)
    else:
        plan = oc.reconcile(messages, await host.history(**where))
        run_id = new_run_id()
        headers = {
            oc.SESSION_HEADER: id_to_header(session_id),
            oc.RUN_HEADER: run_id,
            oc.HISTORY_HEADER: plan.header,
        }
        request_id = current_request_id()
        if body.stream:
            events = host.stream(
                plan.text, run_id=run_id, request_id=request_id, agent=body.model, **where
            )
            return await _stream(body, events, headers)
        result = await host.run(
            plan.text, run_id=run_id, request_id=request_id, agent=body.model, **where
        )
    reply = oc.completion(
        result,
        completion_id=_completion_id(),
        created=int(time.time()),
        model=result.agent or body.model,
        stateless=stateless,
    )
    return JSONResponse(reply, headers=headers)


def _completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


async def _stream(
    body: oc.ChatCompletionRequest, events: AsyncIterator[Event], headers: dict[str, str]
) -> Response:
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    stateless = oc.STATELESS_HEADER in headers
    writer = oc.ChunkWriter(
        _completion_id(), int(time.time()), body.model, include_usage, stateless
    )
    response = await event_stream(writer.frames(events), encode=_raw)
    response.headers.update(headers)
    return response
