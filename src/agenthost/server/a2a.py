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

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
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
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from agenthost import __version__
from agenthost.errors import AgentHostError, InvalidId
from agenthost.events import Done, Event
from agenthost.host import Host
from agenthost.keys import SessionKey, validate_id
from agenthost.messages import Message
from agenthost.protocols import a2a_mapping as am
from agenthost.server.a2a_input import Screened, screen
from agenthost.server.a2a_runs import CANCEL_REASON, StreamEvent, TaskFold
from agenthost.server.auth import Principal
from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.requestid import current_request_id
from agenthost.server.schemas import ERRORS
from agenthost.stores.base import RunRecord
from agenthost.turn import new_run_id

DEFAULT_PAGE = 50
MAX_PAGE = 100
RECENT = 1000


router = APIRouter(tags=["a2a"])


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
        handler = HostRequestHandler(state.host)
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

    def __init__(self, host: Host) -> None:
        self.host = host
        # the client's message of tasks started here, for tasks that never reached the
        # store (refused at once: a busy session); bounded, the store has the rest
        self.requests: OrderedDict[str, A2AMessage] = OrderedDict()

    # -- sending -------------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | A2AMessage:
        who = _principal(context)
        history_length = _history_length(params.configuration)
        task_id, key, after = await self._start(params.message, who, context)
        with _as_a2a_errors():
            if params.configuration.return_immediately:
                fold = TaskFold(task_id, key.session_id)
                for event in await self.host.runner.so_far(task_id, after=after):
                    fold.apply(event, self.host.clock())
                return await self._snapshot(fold, history_length)
            async for event in self.host.runner.follow(task_id, after=after):
                if event.terminal:
                    break
            return await self._task(task_id, who, history_length)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[StreamEvent]:
        who = _principal(context)
        history_length = _history_length(params.configuration)
        task_id, key, after = await self._start(params.message, who, context)
        async for event in self._stream(task_id, key, after, history_length):
            yield event

    async def _start(
        self, message: A2AMessage, who: Principal, context: ServerCallContext
    ) -> tuple[str, SessionKey, int]:
        """Start (or find, for a retried messageId) the task; its id, key and first seq - 1."""
        if message.task_id:
            with _as_a2a_errors():
                return await self._continue(message, who, context)
        text = am.message_text(message, context.state.get("data"))
        session_id = _context_id(message.context_id) if message.context_id else new_context_id()
        ids: dict[str, Any] = {
            "tenant_id": who.tenant_id,
            "user_id": who.user_id,
            "session_id": session_id,
        }
        runner = self.host.runner
        with _as_a2a_errors():
            claim = None
            if message.message_id:  # the client's id for this message: a resend is a retry
                request = {
                    "route": "a2a",
                    "agent": context.state.get("agent"),
                    "text": text,
                    "context_id": message.context_id,
                }
                claim = await runner.claim(_key_of(message.message_id), request, **ids)
                if not claim.owned:
                    return claim.run_id, claim.key, 0
            # Quotas are checked here, so that a refusal is this request's JSON-RPC error,
            # also when the task then runs in the background (returnImmediately).
            quotas = self.host.quotas
            key = SessionKey(who.tenant_id, who.user_id, session_id)
            admission = None if quotas is None else await quotas.admit(key)
            try:
                run = await runner.start(
                    text,
                    run_id=None if claim else new_run_id(),
                    message_meta=am.message_meta(message),
                    request_id=current_request_id(),
                    agent=context.state.get("agent"),
                    publish=True,
                    claim=claim,
                    keep_refusal=True,
                    admission=admission,
                    **ids,
                )
            except BaseException:
                if admission is not None:
                    await admission.finish()
                raise
        self._remember(run.run_id, _request(message, run.key, run.run_id))
        return run.run_id, run.key, 0

    async def _continue(
        self, message: A2AMessage, who: Principal, context: ServerCallContext
    ) -> tuple[str, SessionKey, int]:
        """A message naming a task: only an input-required task (awaiting approval) takes one."""
        task_id = message.task_id
        run = await self._run(task_id, who)
        if message.context_id and message.context_id != run.key.session_id:
            raise TaskNotFoundError(
                message=f"task {task_id} is not in context {message.context_id}"
            )
        live = self.host.runner.local(task_id)
        if (live is not None and not live.ended) or run.status == "running":
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
        live = await self.host.runner.adopt(events, run_id=task_id, key=run.key)
        self._remember(task_id, _request(message, run.key, task_id))
        return task_id, run.key, live.first_seq - 1

    def _remember(self, task_id: str, request: A2AMessage) -> None:
        self.requests[task_id] = request
        while len(self.requests) > RECENT:
            self.requests.popitem(last=False)

    async def _stream(
        self,
        task_id: str,
        key: SessionKey,
        after: int,
        history_length: int | None,
        *,
        catch_up: bool = False,
    ) -> AsyncIterator[StreamEvent]:
        """The task, then every update until its final status: ids make it seamless.

        The task first is as it was at ``after`` (the sender's stream shows every
        update), or with ``catch_up`` as it is now (a subscriber joining late).
        """
        runner = self.host.runner
        fold = TaskFold(task_id, key.session_id, seq=after)
        with _as_a2a_errors():
            if catch_up:
                for event in await runner.so_far(task_id, after=after):
                    fold.apply(event, self.host.clock())
            yield await self._snapshot(fold, history_length)
            if fold.ended:
                return
            async for event in runner.follow(task_id, after=fold.seq):
                for update in fold.apply(event, self.host.clock()):
                    yield update

    async def _snapshot(self, fold: TaskFold, history_length: int | None) -> Task:
        """A task from its fold: the reply so far, the history as stored (or as sent)."""
        run = await self.host.get_run(fold.task_id)
        if run is not None:
            messages = await _history(self.host, run.key)
            history = am.history_of(fold.task_id, messages, fold.context_id)
            at = am.status_at(run) if fold.ended else self.host.clock()
        else:
            request = self.requests.get(fold.task_id)
            history = [request] if request is not None else []
            at = self.host.clock()
        return fold.task(at, history, history_length)

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
        run = await self.host.get_run(task_id) if task_id else None
        if run is not None:
            if not _owned(run.key, who):
                raise TaskNotFoundError(message=f"task {task_id} not found")
            if run.status == "running":  # the reply so far, as its events tell it
                fold = TaskFold(task_id, run.key.session_id)
                for event in await self.host.runner.so_far(task_id):
                    fold.apply(event, self.host.clock())
                return await self._snapshot(fold, history_length)
            return await self._build(run, await _history(self.host, run.key), history_length)
        view = await self.host.runner.view(task_id) if task_id else None
        if view is None or not _owned(view.key, who):
            raise TaskNotFoundError(message=f"task {task_id} not found")
        fold = TaskFold(task_id, view.key.session_id)  # queued, or refused before it began
        for event in await self.host.runner.so_far(task_id):
            fold.apply(event, self.host.clock())
        return await self._snapshot(fold, history_length)

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
        with _as_a2a_errors():
            task = await self._task(params.id, who, 0)
        if task.status.state != TaskState.TASK_STATE_WORKING:
            state = TaskState.Name(task.status.state)
            raise UnsupportedOperationError(
                message=f"task {params.id} is not running ({state}); use GetTask"
            )
        key = SessionKey(who.tenant_id, who.user_id, task.context_id)
        async for event in self._stream(params.id, key, 0, None, catch_up=True):
            yield event

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        who = _principal(context)
        with _as_a2a_errors():
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
            await self.host.runner.cancel(params.id, reason=CANCEL_REASON)  # in any process
            return await self._task(params.id, who, None)

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


def _key_of(message_id: str) -> str:
    """The idempotency key of an A2A message id (its own namespace; long ids hashed)."""
    if len(message_id) <= 251:
        return "a2a:" + message_id
    return "a2a#" + hashlib.sha256(message_id.encode()).hexdigest()


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
