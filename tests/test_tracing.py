"""OpenTelemetry spans of turns, model calls and tool calls, read back from the SDK's
in-memory exporter; trace context from an HTTP request's ``traceparent``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agenthost import (
    Agent,
    FunctionModel,
    Host,
    ModelError,
    ModelReply,
    ModelRequest,
    Usage,
    tool,
    tool_call,
)
from agenthost.server import create_app
from agenthost.settings import Settings
from agenthost.tracing import Tracing


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


def tracing(exporter: InMemorySpanExporter, *, content: bool = False) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(tracer_provider=provider, capture_content=content)


@tool
def lookup(city: str) -> str:
    """The weather in a city.

    Args:
        city: where
    """
    return f"sunny in {city}"


def weather(request: ModelRequest) -> ModelReply:
    usage = Usage(input_tokens=30, output_tokens=5, requests=1)
    last = request.messages[-1]
    if last.content == "explode":
        raise ModelError("provider down")
    if last.role == "user":
        return ModelReply(tool_calls=[tool_call("lookup", {"city": "Oslo"})], usage=usage)
    return ModelReply(text=f"It is {last.content}.", usage=usage)


def agent() -> Agent:
    return Agent(
        name="forecaster",
        model=FunctionModel(weather, model_name="openai:gpt-test"),
        tools=[lookup],
    )


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


async def test_a_turn_is_an_agent_span_with_model_and_tool_spans(
    exporter: InMemorySpanExporter,
) -> None:
    async with Host(agent(), tracing=tracing(exporter)) as host:
        result = await host.run(
            "Weather in Oslo?", user_id="alice", session_id="s1", tenant_id="acme"
        )
    spans = by_name(exporter.get_finished_spans())
    assert sorted(spans) == [
        "chat openai:gpt-test",
        "execute_tool lookup",
        "invoke_agent forecaster",
    ]
    (turn,) = spans["invoke_agent forecaster"]
    chats = spans["chat openai:gpt-test"]
    (tool_span,) = spans["execute_tool lookup"]
    assert turn.kind == SpanKind.INTERNAL and turn.parent is None
    assert dict(turn.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "forecaster",
        "gen_ai.request.model": "openai:gpt-test",
        "gen_ai.provider.name": "openai",
        "gen_ai.conversation.id": "s1",
        "agenthost.tenant_id": "acme",
        "agenthost.user_id": "alice",
        "agenthost.session_id": "s1",
        "agenthost.run_id": result.run_id,
        "gen_ai.usage.input_tokens": 60,
        "gen_ai.usage.output_tokens": 10,
        "agenthost.run.status": "completed",
    }
    assert len(chats) == 2
    for chat in [*chats, tool_span]:
        assert chat.parent is not None and chat.parent.span_id == turn.context.span_id
        assert chat.context.trace_id == turn.context.trace_id
    first, second = sorted(chats, key=lambda s: s.start_time or 0)
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.usage.input_tokens"] == 30
    assert first.attributes["gen_ai.usage.output_tokens"] == 5
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (first.end_time or 0) <= (tool_span.start_time or 0) <= (second.start_time or 0)
    assert tool_span.attributes is not None
    assert tool_span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool_span.attributes["gen_ai.tool.name"] == "lookup"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_lookup"
    for span in exporter.get_finished_spans():  # no user data unless asked for
        text = json.dumps(dict(span.attributes or {}))
        assert "Oslo" not in text and "sunny" not in text


async def test_content_goes_on_spans_only_when_asked(exporter: InMemorySpanExporter) -> None:
    async with Host(agent(), tracing=tracing(exporter, content=True)) as host:
        await host.run("Weather in Oslo?")
    spans = by_name(exporter.get_finished_spans())
    first = min(spans["chat openai:gpt-test"], key=lambda s: s.start_time or 0)
    assert first.attributes is not None
    assert "Weather in Oslo?" in str(first.attributes["gen_ai.input.messages"])
    assert "lookup" in str(first.attributes["gen_ai.output.messages"])
    (tool_span,) = spans["execute_tool lookup"]
    assert tool_span.attributes is not None
    assert tool_span.attributes["gen_ai.tool.call.result"] == "sunny in Oslo"


async def test_a_failed_turn_marks_its_spans_as_errors(exporter: InMemorySpanExporter) -> None:
    async with Host(agent(), tracing=tracing(exporter)) as host:
        with pytest.raises(ModelError):
            await host.run("explode")
    spans = by_name(exporter.get_finished_spans())
    (turn,) = spans["invoke_agent forecaster"]
    (chat,) = spans["chat openai:gpt-test"]
    for span in (turn, chat):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes is not None and span.attributes["error.type"] == "failed"
    assert "provider down" in (turn.status.description or "")


async def test_a_request_traceparent_is_the_turn_span_parent(
    exporter: InMemorySpanExporter,
) -> None:
    host = Host(agent(), tracing=tracing(exporter))
    app = create_app(Settings.load({"store": "memory://", "otel": True}), host=host)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/v1/chat",
            json={"message": "Weather?", "user_id": "u"},
            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
        assert response.status_code == 200, response.text
        untraced = await client.post("/v1/chat", json={"message": "Again?", "user_id": "u"})
        assert untraced.status_code == 200
    await host.close()
    turns = by_name(exporter.get_finished_spans())["invoke_agent forecaster"]
    joined, alone = sorted(turns, key=lambda s: s.start_time or 0)
    assert f"{joined.context.trace_id:032x}" == trace_id
    assert joined.parent is not None and f"{joined.parent.span_id:016x}" == parent_id
    assert joined.parent.is_remote
    assert f"{alone.context.trace_id:032x}" != trace_id and alone.parent is None


def test_with_tracing_off_nothing_of_the_sdk_is_imported() -> None:
    code = (
        "import sys\n"
        "from agenthost.server import create_app\n"
        "from agenthost.settings import Settings\n"
        "create_app(Settings.load({'store': 'memory://'}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')"
        " or m == 'agenthost.tracing'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
