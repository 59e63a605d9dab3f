"""Prometheus metrics with one registry per app, and the Host observer that feeds them.

Requests are counted by route template (``/v1/sessions/{session_id}``), never by
raw path, so the label set stays bounded. Turn, model and token metrics carry the
agent's name: a label bounded by the agents the server was started with. Usage is counted by tenant
and agent, never by user; tenants beyond the first :data:`MAX_TENANTS` seen share the
label ``_other``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthost.server.series import StatsSeries
from agenthost.stores.base import RunRecord

if TYPE_CHECKING:
    from agenthost.errors import QuotaExceeded
    from agenthost.host import Host
    from agenthost.usage import UsageRow

MAX_TENANTS = 1000
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

CLIENT_LEFT = 499
"""The status a request is counted with when its client left before any response (as
nginx logs it): not a server error."""

turn_log = logging.getLogger("agenthost.turn")
access_log = logging.getLogger("agenthost.access")


def children(metric: Any) -> Any:
    """``metric.labels`` remembered per label set: ``labels()`` validates its arguments and
    takes a lock on every call, and a turn records several metrics. The label sets are
    bounded (see the module's docstring), and so is this cache."""
    cache: dict[tuple[str, ...], Any] = {}

    def child(*values: str) -> Any:
        found = cache.get(values)
        if found is None:
            found = cache[values] = metric.labels(*values)
        return found

    return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "agenthost_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "agenthost_http_request_duration_seconds",
            "HTTP request latency (to the end of the response body)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.turn_seconds = Histogram(
            "agenthost_turn_duration_seconds",
            "Turn latency by agent (the one that ended the turn) and final run status",
            ["agent", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "agenthost_model_call_duration_seconds",
            "Latency of one model call, by the model that answered and the agent calling it",
            ["agent", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "agenthost_tokens", "Model tokens used, by agent", ["agent", "kind"], registry=r
        )
        self.handoffs = Counter(
            "agenthost_handoffs",
            "Sessions transferred from one agent to another",
            ["source", "target"],
            registry=r,
        )
        self.compactions = Counter(
            "agenthost_compactions",
            "Session compactions (summaries of what fell out of the window) by outcome",
            ["status"],
            registry=r,
        )
        self.compaction_seconds = Histogram(
            "agenthost_compaction_duration_seconds",
            "Time to summarise (model call included), off the user's wait",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.live_sessions = Gauge(
            "agenthost_live_sessions", "Sessions held in memory right now", registry=r
        )
        self.usage_turns = Counter(
            "agenthost_usage_turns",
            "Turns finished, by tenant and agent",
            ["tenant", "agent"],
            registry=r,
        )
        self.usage_errors = Counter(
            "agenthost_usage_errors",
            "Turns failed, by tenant and agent",
            ["tenant", "agent"],
            registry=r,
        )
        self.usage_tokens = Counter(
            "agenthost_usage_tokens",
            "Model tokens by tenant, agent and kind (input, output)",
            ["tenant", "agent", "kind"],
            registry=r,
        )
        self.quota_refusals = Counter(
            "agenthost_quota_refusals",
            "Requests refused by a quota, by limit (error code) and level (user, tenant)",
            ["code", "level"],
            registry=r,
        )
        self._tenants: set[str] = set()
        self.series = StatsSeries()  # the dashboard's recent history (GET /v1/admin/series)
        # the children the hot path records to, looked up once per label set
        self.request_count = children(self.requests)
        self.request_latency = children(self.request_seconds)
        self.turn_latency = children(self.turn_seconds)
        self.model_latency = children(self.model_seconds)
        self.token_count = children(self.tokens)
        self.usage_turn_count = children(self.usage_turns)
        self.usage_error_count = children(self.usage_errors)
        self.usage_token_count = children(self.usage_tokens)

    def watch(self, host: Host) -> None:
        self.live_sessions.set_function(lambda: host.live_count)
        if host.agents.tool_sources():
            self.registry.register(MCPCollector(host))
        if host.usage is not None:
            host.usage.listeners.append(self.record_usage)
        if host.quotas is not None:
            host.quotas.listeners.append(self.record_refusal)

    def _tenant_label(self, tenant_id: str) -> str:
        if tenant_id in self._tenants:
            return tenant_id
        if len(self._tenants) < MAX_TENANTS:
            self._tenants.add(tenant_id)
            return tenant_id
        return "_other"

    def record_usage(self, tenant_id: str, user_id: str, agent: str, row: UsageRow) -> None:
        tenant = self._tenant_label(tenant_id)
        if row.turns:
            self.usage_turn_count(tenant, agent).inc(row.turns)
        if row.errors:
            self.usage_error_count(tenant, agent).inc(row.errors)
        if row.input_tokens:
            self.usage_token_count(tenant, agent, "input").inc(row.input_tokens)
        if row.output_tokens:
            self.usage_token_count(tenant, agent, "output").inc(row.output_tokens)

    def record_request(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        """One HTTP request served: counted by route template and status, timed, and (at
        debug level) an access log line."""
        method = scope["method"]
        self.request_count(method, route, str(status)).inc()
        if status >= 500:
            self.series.record_http_error()
        self.request_latency(method, route).observe(seconds)
        if access_log.isEnabledFor(logging.DEBUG):
            fields = {"method": method, "route": route, "status": status}
            fields["latency_ms"] = round(seconds * 1000, 2)
            fields["client"] = (scope.get("client") or ("",))[0]  # a trusted proxy may name it
            access_log.debug("request", extra={"fields": fields})

    def record_refusal(self, error: QuotaExceeded) -> None:
        self.quota_refusals.labels(error.code, error.scope or "").inc()


class MCPCollector(Collector):
    """The state of the agent's MCP servers, read from their stats at each scrape."""

    COUNTERS: ClassVar[dict[str, str]] = {
        "connects": "Connections opened",
        "connect_failures": "Connection attempts that failed",
        "lost": "Connections that broke (and are re-established on demand)",
        "closed_idle": "Connections closed after their idle timeout",
        "calls": "Tool calls",
        "call_errors": "Tool calls that failed to reach an answer",
        "tool_errors": "Tool calls the server answered with an error",
        "timeouts": "Tool calls that timed out",
    }

    def __init__(self, host: Host) -> None:
        self.host = host

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "agenthost_mcp_up", "1 unless the last connection attempt failed", labels=["server"]
        )
        connections = GaugeMetricFamily(
            "agenthost_mcp_connections", "Open connections (one per credential)", labels=["server"]
        )
        counters = {
            name: CounterMetricFamily(f"agenthost_mcp_{name}", text, labels=["server"])
            for name, text in self.COUNTERS.items()
        }
        for server, source in self.host.agents.tool_sources().items():
            stats = source.stats()
            up.add_metric([server], 0.0 if stats.get("state") == "down" else 1.0)
            connections.add_metric([server], float(stats.get("connections", 0)))
            for name, family in counters.items():
                family.add_metric([server], float(stats.get(name, 0)))
        yield up
        yield connections
        yield from counters.values()


class MetricsObserver:
    """The Host's ``TurnObserver``: turn and model metrics plus one JSON log line per turn."""

    _PAUSED_RUNS = 10_000

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # Usage already counted for runs paused for approval: a resumed run carries it again.
        self._paused: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def model_called(self, model: str, seconds: float, agent: str) -> None:
        self.metrics.model_latency(agent, model).observe(seconds)

    def compaction_finished(self, status: str, seconds: float) -> None:
        self.metrics.compactions.labels(status).inc()
        self.metrics.compaction_seconds.observe(seconds)

    def handed_off(self, source: str, target: str) -> None:
        self.metrics.handoffs.labels(source, target).inc()

    def turn_finished(self, run: RunRecord, seconds: float, agent: str) -> None:
        metrics = self.metrics
        metrics.turn_latency(agent, run.status).observe(seconds)
        if run.status != "awaiting_approval":  # a paused turn finishes when it is answered
            metrics.series.record_turn(seconds, run.status)
        usage = run.usage
        seen_in, seen_out = self._paused.pop(run.run_id, (0, 0))
        spent_in, spent_out = usage.input_tokens - seen_in, usage.output_tokens - seen_out
        if spent_in > 0:
            metrics.token_count(agent, "input").inc(spent_in)
        if spent_out > 0:
            metrics.token_count(agent, "output").inc(spent_out)
        if run.status == "awaiting_approval":
            self._paused[run.run_id] = (usage.input_tokens, usage.output_tokens)
            while len(self._paused) > self._PAUSED_RUNS:
                self._paused.popitem(last=False)
        if not turn_log.isEnabledFor(logging.INFO):
            return
        key = run.key
        fields = {
            "tenant_id": key.tenant_id,
            "user_id": key.user_id,
            "session_id": key.session_id,
            "agent": agent,
            "run_id": run.run_id,
            "status": run.status,
            "latency_ms": round(seconds * 1000, 2),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        }
        if run.error:
            fields["error"] = run.error
        # the record made directly: Logger.info would walk the stack for a caller no line shows
        record = turn_log.makeRecord(
            turn_log.name, logging.INFO, __file__, 0, "turn", (), None, extra={"fields": fields}
        )
        turn_log.handle(record)


class StatusOf:
    """``send``, noting the status of the response it starts: ``CLIENT_LEFT`` until one
    starts, 500 if the app failed before (:meth:`failed`)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = CLIENT_LEFT

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)

    def failed(self) -> None:
        if self.status == CLIENT_LEFT:
            self.status = 500


class RequestMetricsMiddleware:
    """Pure ASGI: counts each HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        sent = StatusOf(send)
        try:
            await self.app(scope, receive, sent)
        except BaseException:
            sent.failed()
            raise
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.record_request(scope, route, sent.status, time.perf_counter() - began)
