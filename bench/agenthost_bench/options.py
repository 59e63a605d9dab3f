"""What one invocation of the suite was asked to do: sizes, repetitions, PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field

from agenthost_bench.inprocess import Scale


@dataclass(frozen=True, slots=True)
class Options:
    """What one invocation of the suite was asked to do."""

    quick: bool = False
    scale: Scale = field(default_factory=Scale)
    postgres: str | None = None
    redis: str | None = None  # B8's Redis variants
    b4_live: int = 10_000
    b4_touched: int = 100_000
    b4_max_live: int = 1000
    http_seconds: float = 10.0
    http_warmup: float = 2.0
    http_connections: int = 64
    http_users: int = 1000
    sse_turns: int = 300  # B12: streamed turns per series

    @classmethod
    def make(cls, *, quick: bool, postgres: str | None = None, redis: str | None = None) -> Options:
        if quick:
            return cls(
                quick=True,
                scale=Scale.quick(),
                postgres=postgres,
                redis=redis,
                b4_live=2000,
                b4_touched=10_000,
                http_seconds=4.0,
                http_warmup=1.0,
                sse_turns=60,
            )
        return cls(postgres=postgres, redis=redis)
