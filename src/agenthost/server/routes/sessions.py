"""The caller's sessions: list, create, read, change, delete, page messages, answer approvals.

Session ids live inside the caller's user, so another user's session is simply
not there: 404, never a hint that it exists. A session shows the agent it is
talking to (``agent``) and the one it started with (``entry_agent``); creating
or patching a session with ``agent`` starts or moves it there.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from agenthost.agents import client_config, entry_name
from agenthost.errors import Conflict, NotFound
from agenthost.host import Host
from agenthost.server.auth import Principal
from agenthost.server.deps import CurrentHost, CurrentIdentity
from agenthost.server.paths import CallPath, SessionPath
from agenthost.server.routes.chat import SSE_DOC, wants_stream
from agenthost.server.schemas import (
    ERRORS,
    ApprovalRequest,
    ChatResponse,
    Deleted,
    MessagePage,
    SessionCreate,
    SessionList,
    SessionOut,
    SessionPatch,
)
from agenthost.server.sse import event_stream
from agenthost.stores.base import SessionRecord

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=ERRORS)


async def _existing(host: Host, who: Principal, session_id: str) -> SessionRecord:
    record = await host.get_session(
        tenant_id=who.tenant_id, user_id=who.user_id, session_id=session_id
    )
    if record is None:
        raise NotFound(f"session {session_id!r} not found")
    return record


def session_out(host: Host, record: SessionRecord) -> dict[str, Any]:
    """A session as the API shows it: its agent apart from the config clients set."""
    out = record.to_dict()
    out["config"] = client_config(record.config)
    out["agent"] = host.agents.active(record.config).name
    out["entry_agent"] = entry_name(record.config)
    return out


@router.get("", response_model=SessionList, summary="List the caller's sessions, newest first")
async def list_sessions(
    host: CurrentHost,
    identity: CurrentIdentity,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    who = identity.principal()
    records = await host.sessions(
        tenant_id=who.tenant_id, user_id=who.user_id, limit=limit, offset=offset
    )
    sessions = [session_out(host, r) for r in records]
    return {"sessions": sessions, "limit": limit, "offset": offset}


@router.post("", response_model=SessionOut, status_code=201, summary="Create a session")
async def create_session(
    body: SessionCreate, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    who = identity.principal(body.user_id)
    session_id = body.session_id or "s_" + os.urandom(8).hex()
    ids = {"tenant_id": who.tenant_id, "user_id": who.user_id, "session_id": session_id}
    if await host.get_session(**ids) is not None:
        raise Conflict(f"session {session_id!r} already exists")
    record = await host.create_session(
        **ids, state=body.state, config=body.config, agent=body.agent
    )
    return session_out(host, record)


@router.get("/{session_id}", response_model=SessionOut, summary="Read one session")
async def get_session(
    session_id: SessionPath, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    return session_out(host, await _existing(host, identity.principal(), session_id))


@router.patch(
    "/{session_id}", response_model=SessionOut, summary="Merge-patch a session's state and config"
)
async def patch_session(
    session_id: SessionPath, body: SessionPatch, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    who = identity.principal()
    record = await host.update_session(
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        session_id=session_id,
        state=body.state,
        config=body.config,
        agent=body.agent,
    )
    return session_out(host, record)


@router.delete("/{session_id}", response_model=Deleted, summary="Delete a session and its history")
async def delete_session(
    session_id: SessionPath, host: CurrentHost, identity: CurrentIdentity
) -> Deleted:
    who = identity.principal()
    deleted = await host.clear(tenant_id=who.tenant_id, user_id=who.user_id, session_id=session_id)
    if not deleted:
        raise NotFound(f"session {session_id!r} not found")
    return Deleted(deleted=deleted)


@router.get(
    "/{session_id}/messages",
    response_model=MessagePage,
    response_model_exclude_unset=True,
    summary="Page through a session's stored messages, oldest first",
)
async def list_messages(
    session_id: SessionPath,
    host: CurrentHost,
    identity: CurrentIdentity,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    who = identity.principal()
    await _existing(host, who, session_id)
    messages = await host.history(
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        session_id=session_id,
        after_seq=after_seq,
        limit=limit,
    )
    next_after = messages[-1].seq if len(messages) == limit else None
    return {"messages": [m.to_dict() for m in messages], "next_after_seq": next_after}


@router.post(
    "/{session_id}/approvals/{call_id}",
    response_model=ChatResponse,
    responses=SSE_DOC,
    summary="Approve or deny a tool call waiting for approval, and continue the turn",
)
async def answer_approval(
    session_id: SessionPath,
    call_id: CallPath,
    body: ApprovalRequest,
    host: CurrentHost,
    identity: CurrentIdentity,
    accept: Annotated[str | None, Header()] = None,
) -> Response | dict[str, Any]:
    who = identity.principal()
    ids = {"tenant_id": who.tenant_id, "user_id": who.user_id, "session_id": session_id}
    if wants_stream(body.stream, accept):
        return await event_stream(host.approve_stream(call_id, body.approve, **ids))
    result = await host.approve(call_id, body.approve, **ids)
    return result.to_dict()
