"""The caller's long-term memories: list (or search), create, read, change, delete.

A memory id lives inside its user, like a session id: another user's memory is
not there (404). Service and admin credentials name the user they act for
(``user_id`` in the body or ``X-User-Id``); admins may name another tenant. The
anonymous user (``default``, under ``--auth none`` without a user) has no memory:
422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from agenthost.server.deps import CurrentHost, CurrentIdentity
from agenthost.server.schemas import (
    ERRORS,
    ID_PATTERN,
    Deleted,
    MemoryCreate,
    MemoryList,
    MemoryOut,
    MemoryPatch,
)

router = APIRouter(prefix="/v1/memories", tags=["memories"], responses=ERRORS)

MemoryPath = Annotated[
    str, Path(min_length=1, max_length=255, pattern=ID_PATTERN, examples=["mem_0123abcd"])
]


@router.get(
    "",
    response_model=MemoryList,
    summary="List the caller's memories, newest first, or search them (q) by relevance",
)
async def list_memories(
    host: CurrentHost,
    identity: CurrentIdentity,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    q: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
) -> dict[str, Any]:
    who = identity.principal()
    ids = {"tenant_id": who.tenant_id, "user_id": who.user_id}
    if q is None:
        records = await host.memories.page(**ids, limit=limit, offset=offset)
    else:  # a ranking has no stable pages far down: the first 10,000 are searched
        found = await host.memories.search(q, **ids, limit=min(offset + limit, 10_000))
        records = found[offset : offset + limit]
    next_offset = offset + limit if len(records) == limit else None
    return {
        "memories": [r.to_dict() for r in records],
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
    }


@router.post("", response_model=MemoryOut, status_code=201, summary="Remember something")
async def create_memory(
    body: MemoryCreate, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    who = identity.principal(body.user_id)
    record = await host.memories.add(
        body.text,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        kind=body.kind,
        tags=body.tags,
        session_id=body.session_id,
    )
    return record.to_dict()


@router.get("/{memory_id}", response_model=MemoryOut, summary="Read one memory")
async def get_memory(
    memory_id: MemoryPath, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    who = identity.principal()
    record = await host.memories.get(memory_id, tenant_id=who.tenant_id, user_id=who.user_id)
    return record.to_dict()


@router.patch(
    "/{memory_id}",
    response_model=MemoryOut,
    summary="Change a memory's text, kind or tags (with revision: only if unchanged)",
)
async def patch_memory(
    memory_id: MemoryPath, body: MemoryPatch, host: CurrentHost, identity: CurrentIdentity
) -> dict[str, Any]:
    who = identity.principal()
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if body.text is not None:
        changes["text"] = body.text
    if "kind" in given:
        changes["kind"] = body.kind
    if body.tags is not None:
        changes["tags"] = body.tags
    record = await host.memories.update(
        memory_id,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        revision=body.revision,
        **changes,
    )
    return record.to_dict()


@router.delete("/{memory_id}", response_model=Deleted, summary="Forget one memory")
async def delete_memory(
    memory_id: MemoryPath, host: CurrentHost, identity: CurrentIdentity
) -> Deleted:
    who = identity.principal()
    await host.memories.delete(memory_id, tenant_id=who.tenant_id, user_id=who.user_id)
    return Deleted(deleted=1)
