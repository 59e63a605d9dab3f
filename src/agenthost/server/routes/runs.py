"""Runs, from any process: ``GET /v1/runs/{run_id}``, its events, and cancelling it.

A caller sees its own runs (admins any); another user's run is 404, as if it did
not exist. Events are Server-Sent Events with ids: send ``Last-Event-ID`` (or
``?after=``) to resume after the last one received. Published runs (background,
idempotent, or streamed with ``--on-disconnect continue``) can be followed while
they run; of any other run, its events give its end once it ended.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from agenthost.errors import Conflict, InvalidInput, NotFound
from agenthost.host import Host
from agenthost.runs import FINISHED, RunView
from agenthost.server.auth import Identity
from agenthost.server.deps import CurrentHost, CurrentIdentity
from agenthost.server.runstream import run_headers, stream_response
from agenthost.server.schemas import ERRORS, ID_PATTERN, Usage

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERRORS)

RunPath = Annotated[
    str, Path(min_length=1, max_length=255, pattern=ID_PATTERN, examples=["run_0123abcd"])
]


class RunOut(BaseModel):
    run_id: str
    user_id: str
    session_id: str
    status: Literal[
        "queued", "running", "awaiting_approval", "completed", "failed", "interrupted"
    ] = Field(description="queued: waiting for the session's previous turn")
    started_at: float | None
    finished_at: float | None
    error: str | None
    usage: Usage
    request_id: str | None
    published: bool = Field(description="whether its events can be followed while it runs")
    result: dict[str, Any] | None = Field(
        description="once it ended: its last event (done, as POST /v1/chat answers, or error)"
    )


async def _visible(host: Host, identity: Identity, run_id: str) -> RunView:
    view = await host.runner.view(run_id)
    if view is None or not _may_see(identity, view):
        raise NotFound(f"run {run_id} not found")
    return view


def _may_see(identity: Identity, view: RunView) -> bool:
    if identity.admin:
        return True
    who = identity.principal()
    return (view.key.tenant_id, view.key.user_id) == (who.tenant_id, who.user_id)


@router.get("/{run_id}", response_model=RunOut, summary="A run's status and, once ended, result")
async def get_run(run_id: RunPath, host: CurrentHost, identity: CurrentIdentity) -> dict[str, Any]:
    return (await _visible(host, identity, run_id)).to_dict()


def _after(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    try:
        value = int(last_event_id.strip())
    except ValueError:
        raise InvalidInput(
            "Last-Event-ID must be the id of an event of this run (a number)",
            field="Last-Event-ID",
        ) from None
    if value < 0:
        raise InvalidInput("Last-Event-ID must not be negative", field="Last-Event-ID")
    return value


@router.get(
    "/{run_id}/events",
    summary="Follow a run: Server-Sent Events with ids, resumable with Last-Event-ID",
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'id: 3\nevent: delta\ndata: {"type":"delta","text":"Hi"}\n\n',
                }
            },
            "description": "The run's events after the given id, ending with done or error",
        }
    },
)
async def run_events(
    run_id: RunPath,
    host: CurrentHost,
    identity: CurrentIdentity,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (sent by EventSource)")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="Resume after this event id (if no header)")
    ] = None,
) -> Response:
    await _visible(host, identity, run_id)
    start = _after(last_event_id, after)
    events = host.runner.follow(run_id, after=start)
    return stream_response(events, headers=run_headers(run_id))


@router.post(
    "/{run_id}/cancel",
    response_model=RunOut,
    responses={202: {"model": RunOut, "description": "asked; still running elsewhere"}},
    summary="Cancel a run, in whichever process runs it",
)
async def cancel_run(run_id: RunPath, host: CurrentHost, identity: CurrentIdentity) -> Response:
    view = await _visible(host, identity, run_id)
    if view.status == "awaiting_approval":
        raise Conflict(f"run {run_id} waits for an approval: deny it to end the run")
    if view.status in FINISHED:
        raise Conflict(f"run {run_id} has already ended ({view.status})")
    ended = await host.runner.cancel(run_id)
    after = await host.runner.view(run_id) or view
    return JSONResponse(after.to_dict(), status_code=200 if ended else 202)
