"""OpenTelemetry spans for turns, model calls and tool calls (GenAI semantic conventions).

``Host(tracing=Tracing())`` (or ``otel = true`` in the server's settings) makes,
per turn::

    invoke_agent <agent>          the turn (or the part of it after an approval)
    ├── chat <model>              each model call: tokens, finish reason
    ├── execute_tool <tool>       each tool call
    └── chat <model>

with ``gen_ai.operation.name``, ``gen_ai.agent.name``, ``gen_ai.request.model``,
``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``/``output_tokens``,
``gen_ai.conversation.id`` (the session id), ``gen_ai.tool.name``/``call.id`` and
``agenthost.tenant_id``, ``agenthost.user_id``, ``agenthost.session_id``,
``agenthost.run_id``. The turn's span is a child of whatever span is current when
the turn starts: in the server, the trace of the request's ``traceparent`` header
(:class:`TraceContextMiddleware`). Message and tool text go on spans only with
``capture_content=True`` (``otel_content = true``): they are the users' data.

The OpenTelemetry SDK is an optional extra (``pip install 'agenthost[otel]'``);
nothing here is imported unless tracing is on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from agenthost.messages import ToolCall
    from agenthost.models.base import ModelRequest
    from agenthost.turn import Turn


def _otel() -> Any:
    from agenthost.extras import require

    require("otel", "OpenTelemetry tracing")
    from opentelemetry import trace

    return trace


def configure_provider(service_name: str = "agenthost") -> None:
    """Install an SDK tracer provider exporting over OTLP/HTTP (``OTEL_EXPORTER_OTLP_*``
    settings), unless the application already installed one."""
    from agenthost.errors import MissingExtra

    trace = _otel()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise MissingExtra("otel", "otel = true (the SDK and its OTLP exporter)") from None
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def _provider_of(model: str) -> str:
    return model.partition(":")[0] if ":" in model else model


def _messages(messages: Sequence[Any]) -> str:
    return json.dumps(
        [{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False
    )


class Tracing:
    """A :class:`~agenthost.watch.Watcher` that records each turn as spans."""

    def __init__(self, *, tracer_provider: Any = None, capture_content: bool = False) -> None:
        from agenthost import __version__

        trace = _otel()
        self.trace = trace
        self.tracer = trace.get_tracer("agenthost", __version__, tracer_provider=tracer_provider)
        self.capture_content = capture_content

    def watch(self, turn: Turn) -> _TurnSpans:
        return _TurnSpans(self, turn)


class _TurnSpans:
    __slots__ = ("call", "context", "model", "seen", "span", "tool", "tracing", "turn")

    def __init__(self, tracing: Tracing, turn: Turn) -> None:
        self.tracing = tracing
        self.turn = turn
        key = turn.run.key
        agent = turn.agent.name
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.request.model": turn.model.name,
            "gen_ai.provider.name": _provider_of(turn.model.name),
            "gen_ai.conversation.id": key.session_id,
            "agenthost.tenant_id": key.tenant_id,
            "agenthost.user_id": key.user_id,
            "agenthost.session_id": key.session_id,
            "agenthost.run_id": turn.run.run_id,
        }
        self.span = tracing.tracer.start_span(f"invoke_agent {agent}", attributes=attributes)
        self.context = tracing.trace.set_span_in_context(self.span)
        usage = turn.usage
        self.seen = (usage.input_tokens, usage.output_tokens)
        self.model: Any = None
        self.call = self.seen
        self.tool: Any = None

    def _child(self, name: str, attributes: dict[str, Any]) -> Any:
        return self.tracing.tracer.start_span(name, context=self.context, attributes=attributes)

    def model_started(self, request: ModelRequest) -> None:
        model = self.turn.model.name
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.agent.name": self.turn.agent.name,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": _provider_of(model),
            "gen_ai.conversation.id": self.turn.run.key.session_id,
        }
        settings = request.settings
        for name, value in (
            ("temperature", settings.temperature),
            ("max_tokens", settings.max_tokens),
            ("top_p", settings.top_p),
        ):
            if value is not None:
                attributes[f"gen_ai.request.{name}"] = value
        if self.tracing.capture_content:
            attributes["gen_ai.system_instructions"] = request.instructions
            attributes["gen_ai.input.messages"] = _messages(request.messages)
        usage = self.turn.usage
        self.call = (usage.input_tokens, usage.output_tokens)
        self.model = self._child(f"chat {model}", attributes)

    def model_finished(self, text: str, calls: Sequence[ToolCall]) -> None:
        span, self.model = self.model, None
        if span is None:
            return
        usage = self.turn.usage
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens - self.call[0])
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens - self.call[1])
        span.set_attribute("gen_ai.response.model", self.turn.answered or self.turn.model.name)
        span.set_attribute("gen_ai.response.finish_reasons", ["tool_calls" if calls else "stop"])
        if self.tracing.capture_content:
            output = [
                {"role": "assistant", "content": text, "tool_calls": [c.to_dict() for c in calls]}
            ]
            span.set_attribute("gen_ai.output.messages", json.dumps(output, ensure_ascii=False))
        span.end()

    def tool_started(self, call: ToolCall) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "function",
        }
        if self.tracing.capture_content:
            attributes["gen_ai.tool.call.arguments"] = call.arguments
        self.tool = self._child(f"execute_tool {call.name}", attributes)

    def tool_finished(self, call: ToolCall, content: str, is_error: bool) -> None:
        span, self.tool = self.tool, None
        if span is None:
            return
        if self.tracing.capture_content:
            span.set_attribute("gen_ai.tool.call.result", content)
        if is_error:
            span.set_attribute("error.type", "tool_error")
            span.set_status(self.tracing.trace.Status(self.tracing.trace.StatusCode.ERROR))
        span.end()

    def ended(self) -> None:
        trace = self.tracing.trace
        run = self.turn.run
        failed = run.status in ("failed", "interrupted")
        for open_span in (self.model, self.tool):  # cut short by the failure
            if open_span is not None:
                open_span.set_attribute("error.type", run.status)
                open_span.set_status(trace.Status(trace.StatusCode.ERROR, run.error))
                open_span.end()
        self.model = self.tool = None
        usage = self.turn.usage
        span = self.span
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens - self.seen[0])
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens - self.seen[1])
        span.set_attribute("agenthost.run.status", run.status)
        if failed:
            span.set_attribute("error.type", run.status)
            span.set_status(trace.Status(trace.StatusCode.ERROR, run.error))
        span.end()


class TraceContextMiddleware:
    """Pure ASGI: the request's W3C ``traceparent`` (and ``tracestate``) becomes the
    current trace context while the request is served, so a turn's span joins the
    caller's trace. Installed only when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import context, propagate

        self.app = app
        self._context = context
        self._propagate = propagate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = self._context.attach(self._propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            self._context.detach(token)
