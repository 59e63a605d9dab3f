"""Optional features and the extra that installs each.

``pip install agenthost`` is the core: ``Agent``, ``Host``, the memory and SQLite
stores, the offline model, tools, and the CLI's in-process commands. The rest comes
with an extra named for what it gives; using a feature without its extra raises
:class:`~agenthost.errors.MissingExtra`, whose message is the ``pip install`` line.

============  ===============================================  ==============================
extra         gives                                            packages
============  ===============================================  ==============================
``server``    ``agenthost serve``: HTTP API, OpenAI-compatible  fastapi, uvicorn[standard],
              API, web page, metrics, API keys and JWT          httpx, prometheus-client, pyjwt
``client``    ``agenthost.client`` and the CLI's ``--url``      httpx
``postgres``  ``PostgresStore``, PostgreSQL coordination        asyncpg
``redis``     ``RedisStore``, Redis coordination                redis
``a2a``       the A2A protocol on the server (``/a2a``)         a2a-sdk, and ``server``
``openai``    ``openai:<model>`` (any compatible endpoint)      openai
``anthropic`` Anthropic models (``anthropic:<model>``)          anthropic
``mcp``       MCP tool servers                                  mcp
``otel``      OpenTelemetry traces                              opentelemetry-api, -sdk
``testing``   :mod:`agenthost.testing` (the store suite)        pytest, pytest-asyncio
``all``       everything above
============  ===============================================  ==============================
"""

from __future__ import annotations

import importlib.util

from agenthost.errors import MissingExtra

MODULES: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "httpx", "prometheus_client", "jwt"),
    "client": ("httpx",),
    "postgres": ("asyncpg",),
    "redis": ("redis",),
    "a2a": ("a2a",),
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "mcp": ("mcp",),
    "otel": ("opentelemetry",),
    "testing": ("pytest", "pytest_asyncio"),
}
"""The top-level modules each extra installs (what :func:`installed` looks for)."""


def installed(extra: str) -> bool:
    """Whether every module of ``extra`` can be imported (nothing is imported)."""
    return all(importlib.util.find_spec(module) is not None for module in MODULES[extra])


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` naming ``feature`` unless ``extra`` is installed."""
    if not installed(extra):
        raise MissingExtra(extra, feature)


__all__ = ["MODULES", "MissingExtra", "installed", "require"]
