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

from agenthost.errors import InvalidInput, NotFound
from agenthost.events import Event, RunResult
from agenthost.host import Host
from agenthost.idempotency import Claim
from agenthost.keys import DEFAULT_ID, id_to_header
from agenthost.protocols import openai_chat as oc
from agenthost.runevents import RunEvent, decode, error_of, result_of
from agenthost.server.auth import header_id
from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.requestid import current_request_id
from agenthost.server.runstream import REPLAYED_HEADER, started_by_request
from agenthost.server.schemas import ERRORS
from agenthost.server.sse import aclose, event_stream

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
    settings: CurrentSettings,
    x_session_id: Annotated[str | None, Header(description="The session to use")] = None,
    x_agenthost_stateless: Annotated[
        str | None, Header(description="1: use exactly these messages, store nothing")
    ] = None,
    idempotency_key: Annotated[
        str | None, Header(description="Retries with this key run the turn once")
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
        if idempotency_key is not None:
            raise InvalidInput(
                "Idempotency-Key does not apply to stateless calls: they store nothing",
                field="Idempotency-Key",
            )
        headers = {oc.STATELESS_HEADER: "1"}
        config = oc.sampling_config(body)
        agent = body.model
        if body.stream:
            return await _stream(
                body, host.stream_stateless(messages, config=config, agent=agent, **where), headers
            )
        result = await host.run_stateless(messages, config=config, agent=agent, **where)
        return JSONResponse(_completion(body, result, _completion_id(), True), headers=headers)
    claim = None
    if idempotency_key is not None:
        request = body.model_dump(mode="json", exclude={"stream", "stream_options"})
        request = {"route": "openai", "session_id": session_id, "request": request}
        claim = await host.runner.claim(idempotency_key, request, **where)
        if not claim.owned:
            return await _retried(host, body, claim)
    plan = oc.reconcile(messages, await host.history(**where))
    detached = settings.on_disconnect == "continue"
    options: dict[str, Any] = {
        "request_id": current_request_id(),
        "agent": body.model,
        "claim": claim,
        "publish": detached,
        **where,
    }
    if body.stream:
        run = await host.runner.start(plan.text, **options)
    else:
        run = await host.runner.run(plan.text, **options)  # in this request's task
    headers = {
        oc.SESSION_HEADER: id_to_header(session_id),
        oc.RUN_HEADER: run.run_id,
        oc.HISTORY_HEADER: plan.header,
    }
    if body.stream:
        events = _typed(started_by_request(run, detached=detached), who.tenant_id)
        return await _stream(body, events, headers, completion_id=_completion_id(run.run_id))
    assert run.last is not None
    result = _result(run.last.data, who.tenant_id)
    return JSONResponse(_completion(body, result, _completion_id(run.run_id)), headers=headers)


async def _retried(host: Host, body: oc.ChatCompletionRequest, claim: Claim) -> Response:
    """A request whose key was claimed before: the first run's completion, not a second run."""
    headers = {
        oc.SESSION_HEADER: id_to_header(claim.key.session_id),
        oc.RUN_HEADER: claim.run_id,
        REPLAYED_HEADER: "true",
    }
    completion_id = _completion_id(claim.run_id)
    tenant = claim.key.tenant_id
    if body.stream:
        events = _typed(host.runner.follow(claim.run_id), tenant)
        return await _stream(body, events, headers, completion_id=completion_id)
    data = claim.result
    if data is None:
        async for event in host.runner.follow(claim.run_id):
            data = event.data
    if data is None:
        raise NotFound(f"run {claim.run_id} of this idempotency key is gone")
    result = _result(data, tenant)
    return JSONResponse(_completion(body, result, completion_id), headers=headers)


def _completion(
    body: oc.ChatCompletionRequest, result: RunResult, completion_id: str, stateless: bool = False
) -> dict[str, Any]:
    return oc.completion(
        result,
        completion_id=completion_id,
        created=int(time.time()),
        model=result.agent or body.model,
        stateless=stateless,
    )


def _result(data: dict[str, Any], tenant_id: str) -> RunResult:
    if data.get("type") == "error":
        raise error_of(str(data.get("code")), str(data.get("message")))
    return result_of(data, tenant_id=tenant_id)


async def _typed(events: AsyncIterator[RunEvent], tenant_id: str) -> AsyncIterator[Event]:
    try:
        async for item in events:
            event = decode(item.data, tenant_id=tenant_id)
            if event is not None:
                yield event
    finally:
        await aclose(events)


def _completion_id(run_id: str | None = None) -> str:
    """A completion's id: derived from its run (a retried request gets the same one)."""
    return "chatcmpl-" + (run_id.removeprefix("run_") if run_id else os.urandom(12).hex())


async def _stream(
    body: oc.ChatCompletionRequest,
    events: AsyncIterator[Event],
    headers: dict[str, str],
    *,
    completion_id: str | None = None,
) -> Response:
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    stateless = oc.STATELESS_HEADER in headers
    writer = oc.ChunkWriter(
        completion_id or _completion_id(), int(time.time()), body.model, include_usage, stateless
    )
    response = await event_stream(writer.frames(events), encode=_raw)
    response.headers.update(headers)
    return response
