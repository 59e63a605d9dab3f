"""Running a module of the suite in a fresh interpreter (``python -m agenthost_bench.<name>``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The directory holding ``agenthost_bench`` (``bench/`` in the repository)."""


def python_module(module: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``agenthost_bench.<module>`` with ``args``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", f"agenthost_bench.{module}", *args], env
