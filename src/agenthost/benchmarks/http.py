"""B5/B7: ``agenthost serve`` driven over HTTP by a load generator in another process."""

from __future__ import annotations

import importlib.util

from agenthost.benchmarks.inprocess import Results
from agenthost.benchmarks.suite import Options


def unavailable() -> str | None:
    """Why the HTTP workloads cannot run here, or None."""
    if importlib.util.find_spec("agenthost.commands.serve") is None:
        return "`agenthost serve` is not built yet"
    return None


def run(backend: str, options: Options) -> Results:
    raise NotImplementedError(f"HTTP benchmark on {backend}")
