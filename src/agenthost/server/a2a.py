"""A2A: the agent card at ``/.well-known/agent-card.json`` and JSON-RPC 2.0 at ``POST /a2a``.

Both protocol generations are served on one endpoint: v1.0 methods
(``SendMessage``, ``SendStreamingMessage``, ``GetTask``, ``ListTasks``,
``CancelTask``, ``SubscribeToTask``) and the v0.3 names deployed clients still
send (``message/send``, ``message/stream``, ``tasks/get``, ``tasks/cancel``,
``tasks/resubscribe``). Without an ``A2A-Version`` header the method name
decides the version.

What comes from a2a-sdk and what does not: the SDK's ``JsonRpcDispatcher``
does the protocol work (JSON-RPC envelope checks, method routing, parsing
params into its protobuf types, error codes, SSE framing, the v0.3
conversion layer), and its types build every task, message and card. Its
``DefaultRequestHandler`` does not fit: it keeps tasks in its own TaskStore
and runs an AgentExecutor per task, while agenthost already stores every run
(= task) with its messages, scoped to tenant and user, in the session store.
A second store would have to be kept in sync for GetTask to work after a
restart or from another process. So :class:`HostRequestHandler` implements
the SDK's ``RequestHandler`` interface directly on the Host; the mapping of
runs to tasks lives in :mod:`agenthost.protocols.a2a_mapping`. Every body is
screened by :mod:`agenthost.server.a2a_input` before the dispatcher reads it.

Auth is the server's own dependency, as on ``/v1/chat``: a missing or bad
credential is HTTP 401 before any JSON-RPC is read. The card itself is public
(clients read it to learn how to authenticate).

Each agent of the server also has its own card and endpoint:
``GET /a2a/<agent>/.well-known/agent-card.json`` and ``POST /a2a/<agent>``
(so ``create_from_url(".../a2a/billing")`` finds it). A message sent there is
addressed to that agent, as on ``/v1/agents/{agent}/chat``; ``/a2a`` follows
the session's active agent. Tasks are the caller's runs whichever endpoint
reads them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import ServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.types import Message as A2AMessage
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import (
    ListTasksCursor,
    decode_list_tasks_cursor,
    encode_list_tasks_cursor,
    validate_history_length,
)
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from agenthost import __version__
from agenthost.errors import AgentHostError, InvalidId
from agenthost.events import Done, Event
from agenthost.host import Host
from agenthost.keys import SessionKey, validate_id
from agenthost.messages import Message
from agenthost.protocols import a2a_mapping as am
from agenthost.server.a2a_input import Screened, screen
from agenthost.server.a2a_runs import LiveTask, LiveTasks, StreamEvent
from agenthost.server.auth import Principal
from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.requestid import current_request_id
from agenthost.server.schemas import ERRORS
from agenthost.stores.base import RunRecord
from agenthost.turn import new_run_id

DEFAULT_PAGE = 50
MAX_PAGE = 100


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    tasks: LiveTasks | None = getattr(app.state, "a2a_tasks", None)
    if tasks is not None:  # before the Host closes: running turns store their interruption
        await tasks.close()


router = APIRouter(tags=["a2a"], lifespan=_lifespan)


@router.get("/.well-known/agent-card.json", summary="The A2A agent card (public)")
async def agent_card(
    request: Request, host: CurrentHost, settings: CurrentSettings
) -> JSONResponse:
    card = am.agent_card(
        host.agent, base_url=str(request.base_url), version=__version__, auth=settings.auth
    )
    return JSONResponse(agent_card_to_dict(card))


RPC_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {
        "description": "A JSON-RPC response, or Server-Sent Events of JSON-RPC responses "
        "for streaming methods",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}


@router.get("/a2a/{agent}/.well-known/agent-card.json", summary="One agent's A2A card (public)")
async def named_agent_card(
    agent: str, request: Request, host: CurrentHost, settings: CurrentSettings
) -> JSONResponse:
    served = host.agents.named(agent)
    card = am.agent_card(
        served,
        base_url=str(request.base_url),
        version=__version__,
        auth=settings.auth,
        path=f"{am.JSONRPC_PATH}/{served.name}",
    )
    return JSONResponse(agent_card_to_dict(card))


@router.post(
    "/a2a/{agent}", summary="A2A JSON-RPC 2.0, addressed to one agent", responses=RPC_RESPONSES
)
async def named_rpc(
    agent: str, request: Request, host: CurrentHost, identity: CurrentIdentity
) -> Response:
    request.state.a2a_agent = host.agents.named(agent).name
    return await rpc(request, identity)


@router.post("/a2a", summary="A2A JSON-RPC 2.0 (v1.0 and v0.3 methods)", responses=RPC_RESPONSES)
async def rpc(request: Request, identity: CurrentIdentity) -> Response:
    request.state.a2a_principal = identity.principal()
    screened = screen(await request.body())
    if not isinstance(screened, Screened):  # refused before the dispatcher reads it
        return JSONResponse(screened)
    request.state.a2a_version = _version(request.headers.get("a2a-version"), screened.body)
    request.state.a2a_data = screened.data
    response: Response = await _dispatcher(request).handle_requests(request)
    return response


def _version(header: str | None, body: Any) -> str:
    """The protocol version to serve: the method name decides between the generations.

    v0.3 method names are paths (``message/send``), v1.0 names are not
    (``SendMessage``). A header naming the other generation, or none at all
    (which the spec reads as 0.3), yields to the method name; any other header
    (``2.0``) stands and is refused as unsupported.
    """
    method = body.get("method") if isinstance(body, dict) else None
    family = "0.3" if isinstance(method, str) and "/" in method else "1.0"
    if not header:
        return family
    major = header.strip().partition(".")[0]
    return family if major in ("0", "1") else header


class _ClientErrorLogs(logging.Filter):
    """The SDK logs a traceback at ERROR when a client sends malformed JSON-RPC.

    That is the client's mistake, already answered with -32600/-32602: keep the
    line as a debug line, without the traceback.
    """

    PREFIXES = ("Failed to validate base JSON-RPC request", "Failed to parse request params")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith(self.PREFIXES):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _quiet_client_errors() -> None:
    logger = logging.getLogger(JsonRpcDispatcher.__module__)
    if not any(isinstance(f, _ClientErrorLogs) for f in logger.filters):
        logger.addFilter(_ClientErrorLogs())


def _dispatcher(request: Request) -> JsonRpcDispatcher:
    state = request.app.state
    dispatcher: JsonRpcDispatcher | None = getattr(state, "a2a_dispatcher", None)
    if dispatcher is None:
        _quiet_client_errors()
        state.a2a_tasks = LiveTasks()
        handler = HostRequestHandler(state.host, state.a2a_tasks)
        dispatcher = JsonRpcDispatcher(handler, _ContextBuilder(), enable_v0_3_compat=True)
        state.a2a_dispatcher = dispatcher
    return dispatcher


class _ContextBuilder(ServerCallContextBuilder):
    """Carries the principal, the effective version and the raw data parts to the handler."""

    def build(self, request: Request) -> ServerCallContext:
        headers = dict(request.headers)
        headers["a2a-version"] = request.state.a2a_version
        state = {
            "headers": headers,
            "principal": request.state.a2a_principal,
            "data": request.state.a2a_data,
            "agent": getattr(request.state, "a2a_agent", None),
        }
        return ServerCallContext(state=state)


def _principal(context: ServerCallContext) -> Principal:
    principal: Principal = context.state["principal"]
    return principal


def _owned(key: SessionKey, who: Principal) -> bool:
    return key.tenant_id == who.tenant_id and key.user_id == who.user_id


def _history_length(config: Any) -> int | None:
    validate_history_length(config)
    return int(config.history_length) if config.HasField("history_length") else None


def new_context_id() -> str:
    return "ctx_" + os.urandom(12).hex()


async def _history(host: Host, key: SessionKey) -> list[Message]:
    return await host.history(
        tenant_id=key.tenant_id, user_id=key.user_id, session_id=key.session_id
    )


class HostRequestHandler(RequestHandler):
    """The A2A methods on the Host: tasks are runs, contexts are the caller's sessions."""

    def __init__(self, host: Host, tasks: LiveTasks) -> None:
        self.host = host
        self.tasks = tasks

    # -- sending -------------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | A2AMessage:
        who = _principal(context)
        history_length = _history_length(params.configuration)
        live = await self._start(params.message, who, context)
        if params.configuration.return_immediately:
            return live.snapshot(history_length)
        await live.done.wait()
        return await self._task(live.task_id, who, history_length)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[StreamEvent]:
        who = _principal(context)
        history_length = _history_length(params.configuration)
        live = await self._start(params.message, who, context)
        async for event in _follow(live, history_length):
            yield event

    async def _start(
        self, message: A2AMessage, who: Principal, context: ServerCallContext
    ) -> LiveTask:
        if message.task_id:
            with _as_a2a_errors():
                return await self._continue(message, who, context)
        text = am.message_text(message, context.state.get("data"))
        session_id = _context_id(message.context_id) if message.context_id else new_context_id()
        run_id = new_run_id()
        tenant_id, user_id = who.tenant_id, who.user_id
        with _as_a2a_errors():
            # Quotas are checked here, so that a refusal is this request's JSON-RPC error,
            # also when the task then runs in the background (returnImmediately).
            quotas, key = self.host.quotas, SessionKey(tenant_id, user_id, session_id)
            admission = None if quotas is None else await quotas.admit(key)
            try:
                events = self.host.stream(
                    text,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    session_id=session_id,
                    run_id=run_id,
                    message_meta=am.message_meta(message),
                    request_id=current_request_id(),
                    agent=context.state.get("agent"),
                    admission=admission,
                )
                request = _request(message, key, run_id)
                return self.tasks.start(LiveTask(run_id, key, request, time.time()), events)
            except BaseException:
                if admission is not None:
                    await admission.finish()
                raise

    async def _continue(
        self, message: A2AMessage, who: Principal, context: ServerCallContext
    ) -> LiveTask:
        """A message naming a task: only an input-required task (awaiting approval) takes one."""
        task_id = message.task_id
        run = await self._run(task_id, who)
        if message.context_id and message.context_id != run.key.session_id:
            raise TaskNotFoundError(
                message=f"task {task_id} is not in context {message.context_id}"
            )
        if self.tasks.is_running(task_id):
            raise _no_message(task_id, TaskState.TASK_STATE_WORKING, context)
        if run.status != "awaiting_approval":
            raise _no_message(task_id, am.STATE_OF_RUN[run.status], context)
        approved = am.approval_answer(message)
        record = await self.host.get_session(
            tenant_id=run.key.tenant_id, user_id=run.key.user_id, session_id=run.key.session_id
        )
        calls = [p.call_id for p in (record.pending if record else []) if p.run_id == task_id]
        if not calls:
            raise TaskNotFoundError(message=f"task {task_id} has no approval waiting")
        events = _answer(self.host, run.key, calls, approved)
        request = _request(message, run.key, task_id)
        return self.tasks.start(LiveTask(task_id, run.key, request, time.time()), events)

    # -- reading -------------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        with _as_a2a_errors():
            return await self._task(params.id, _principal(context), _history_length(params))

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        """The caller's tasks, newest status first, a page at a time (a cursor per page)."""
        who = _principal(context)
        history_length = _history_length(params)
        size = params.page_size if params.HasField("page_size") else DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise InvalidParamsError(message=f"pageSize must be 1 to {MAX_PAGE}, not {size}")
        cursor = _cursor(params.page_token) if params.page_token else None
        with _as_a2a_errors():
            runs = await self._runs(who, params.context_id)
        if params.status:
            runs = [r for r in runs if am.STATE_OF_RUN[r.status] == params.status]
        if params.HasField("status_timestamp_after"):
            after = params.status_timestamp_after.ToNanoseconds()
            runs = [r for r in runs if am.nanos(am.status_at(r)) >= after]
        runs.sort(key=_list_order, reverse=True)
        rest = runs if cursor is None else [r for r in runs if _list_order(r) < cursor]
        page = rest[:size]
        next_page = encode_list_tasks_cursor(_cursor_of(page[-1])) if len(rest) > size else ""
        messages: dict[SessionKey, list[Message]] = {}
        tasks = []
        with _as_a2a_errors():
            for run in page:
                if run.key not in messages:
                    messages[run.key] = await _history(self.host, run.key)
                tasks.append(await self._build(run, messages[run.key], history_length))
        return ListTasksResponse(
            tasks=tasks, next_page_token=next_page, page_size=size, total_size=len(runs)
        )

    async def _runs(self, who: Principal, context_id: str) -> list[RunRecord]:
        """Every run of the caller, or of one of their contexts."""
        if context_id:
            keys = [SessionKey(who.tenant_id, who.user_id, _context_id(context_id))]
        else:
            records = await self.host.sessions(tenant_id=who.tenant_id, user_id=who.user_id)
            keys = [r.key for r in records]
        return [
            run
            for key in keys
            for run in await self.host.runs(
                tenant_id=key.tenant_id,
                user_id=key.user_id,
                session_id=key.session_id,
                limit=10_000,
            )
        ]

    async def _run(self, task_id: str, who: Principal) -> RunRecord:
        run = await self.host.get_run(task_id) if task_id else None
        if run is None or not _owned(run.key, who):
            raise TaskNotFoundError(message=f"task {task_id} not found")
        return run

    async def _task(self, task_id: str, who: Principal, history_length: int | None) -> Task:
        live = self.tasks.get(task_id)
        if live is not None and not _owned(live.key, who):
            live = None
        if live is not None and self.tasks.is_running(task_id):
            return live.snapshot(history_length)
        run = await self.host.get_run(task_id) if task_id else None
        if run is not None and _owned(run.key, who):
            return await self._build(run, await _history(self.host, run.key), history_length)
        if live is not None:  # finished without ever being stored (cancelled while queued)
            return live.snapshot(history_length)
        raise TaskNotFoundError(message=f"task {task_id} not found")

    async def _build(
        self, run: RunRecord, messages: list[Message], history_length: int | None
    ) -> Task:
        task_id, context_id = run.run_id, run.key.session_id
        note = None
        if run.status == "awaiting_approval":
            record = await self.host.get_session(
                tenant_id=run.key.tenant_id, user_id=run.key.user_id, session_id=context_id
            )
            pending = [
                p.to_dict() for p in (record.pending if record else []) if p.run_id == task_id
            ]
            note = am.pending_note(pending, task_id=task_id, context_id=context_id)
        elif run.status in ("failed", "interrupted") and run.error:
            note = am.error_note(run.error, task_id=task_id, context_id=context_id)
        return am.build_task(
            task_id=task_id,
            context_id=context_id,
            state=am.STATE_OF_RUN[run.status],
            at=am.status_at(run),
            history=am.history_of(task_id, messages, context_id),
            reply=am.reply_of(task_id, messages),
            note=note,
            history_length=history_length,
        )

    # -- following and cancelling ----------------------------------------------------

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[StreamEvent]:
        who = _principal(context)
        live = self.tasks.get(params.id)
        if live is None or not _owned(live.key, who) or not self.tasks.is_running(params.id):
            with _as_a2a_errors():
                task = await self._task(params.id, who, 0)
            state = TaskState.Name(task.status.state)
            raise UnsupportedOperationError(
                message=f"task {params.id} is not running in this server process ({state}); "
                "use GetTask"
            )
        async for event in _follow(live, None):
            yield event

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        who = _principal(context)
        live = self.tasks.get(params.id)
        with _as_a2a_errors():
            if live is not None and _owned(live.key, who) and self.tasks.is_running(params.id):
                await self.tasks.cancel(live)
                return await self._task(params.id, who, None)
            task = await self._task(params.id, who, None)
        state = task.status.state
        if state in am.TERMINAL:
            raise TaskNotCancelableError(
                message=f"task {params.id} is already {TaskState.Name(state)}"
            )
        if state == TaskState.TASK_STATE_INPUT_REQUIRED:
            raise TaskNotCancelableError(
                message=f"task {params.id} waits for approval: answer it with no"
            )
        raise TaskNotCancelableError(
            message=f"task {params.id} is running in another server process"
        )

    # -- not offered -----------------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        assert not am.EXTENDED_CARD, "an extended card is declared but not served"
        raise UnsupportedOperationError(
            message="this agent has no extended agent card "
            "(its card does not declare capabilities.extendedAgentCard)"
        )


@contextmanager
def _as_a2a_errors() -> Iterator[None]:
    """agenthost's errors (a bad id, a store outage) as JSON-RPC errors, not tracebacks."""
    try:
        yield
    except AgentHostError as exc:
        raise am.to_a2a_error(exc) from None


def _no_message(task_id: str, state: TaskState, context: ServerCallContext) -> A2AError:
    """A task that takes no message now (spec 3.1.1): finished for good, or still working.

    Both are UnsupportedOperationError (-32004); ``data`` names the task's state,
    so a client tells "start a new task" from "wait for this one" without parsing text.
    """
    v03 = context.state["headers"].get("a2a-version") == "0.3"
    name = am.state_name(state, v03=v03)
    data = {"taskId": task_id, "taskState": name}
    if state in am.TERMINAL:
        text = (
            f"task {task_id} is {name}, a terminal state: it takes no more messages; "
            "send a new message in its context without a taskId"
        )
    else:
        text = f"task {task_id} is still working ({name}): subscribe to it or cancel it"
    return UnsupportedOperationError(message=text, data=data)


def _context_id(value: str) -> str:
    """A client's contextId, checked as the session id it becomes (errors name contextId)."""
    try:
        return validate_id(value, "contextId")
    except InvalidId as exc:
        raise InvalidParamsError(message=exc.message) from None


def _cursor(token: str) -> tuple[int, str]:
    """The position a ``pageToken`` of ours names; anything else is invalid params."""
    cursor = decode_list_tasks_cursor(token)
    if cursor is None or cursor.timestamp_ns is None:
        raise InvalidParamsError(message="pageToken is not one this server issued")
    return cursor.timestamp_ns, cursor.task_id


def _list_order(run: RunRecord) -> tuple[int, str]:
    """ListTasks order (descending): status timestamp as the task shows it, then task id."""
    return am.nanos(am.status_at(run)), run.run_id


def _cursor_of(run: RunRecord) -> ListTasksCursor:
    timestamp_ns, task_id = _list_order(run)
    return ListTasksCursor(timestamp_ns=timestamp_ns, task_id=task_id)


def _request(message: A2AMessage, key: SessionKey, task_id: str) -> A2AMessage:
    """The client's message as the task's first history entry, with its ids filled in."""
    out = A2AMessage()
    out.CopyFrom(message)
    out.context_id, out.task_id = key.session_id, task_id
    return out


async def _follow(live: LiveTask, history_length: int | None) -> AsyncIterator[StreamEvent]:
    """A task's stream: its state now, then every update until the final status."""
    async with live.subscribe() as events:  # subscribe and snapshot with no await between
        yield live.snapshot(history_length)
        async for event in events:
            yield event


async def _answer(
    host: Host, key: SessionKey, calls: list[str], approved: bool
) -> AsyncIterator[Event]:
    """Answer every pending call of a run; the last answer continues the turn."""
    for index, call_id in enumerate(calls):
        events = host.approve_stream(
            call_id,
            approved,
            tenant_id=key.tenant_id,
            user_id=key.user_id,
            session_id=key.session_id,
        )
        async for event in events:
            if type(event) is Done and index < len(calls) - 1:
                continue
            yield event
