"""Usage rows and the ledger protocol: what the meter and every ledger share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from agenthost.errors import InvalidInput

DIMENSIONS = ("day", "tenant_id", "user_id", "agent", "model")
Dimension = Literal["day", "tenant_id", "user_id", "agent", "model"]
COUNTERS = ("turns", "errors", "input_tokens", "output_tokens")

Key = tuple[str, str, str, str, str]  # day, tenant, user, agent, model

ERASED_USER = "(erased)"
"""The user id under which a tenant's usage of erased users is kept (see
:meth:`UsageLedger.erase_user`)."""
ERASURE_FENCE = 3600.0
"""Seconds after an erasure during which usage added for the erased user is kept under
:data:`ERASED_USER` too: the counts of turns still running when the user was erased, and
those other processes had counted and not flushed yet."""


@dataclass(slots=True)
class UsageRow:
    """Counters of one group; dimensions not grouped by are ``None``."""

    day: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    agent: str | None = None
    model: str | None = None
    turns: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: UsageRow) -> None:
        self.turns += other.turns
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: v
            for f in fields(self)
            if (v := getattr(self, f.name)) is not None or f.name not in DIMENSIONS
        }
        out["total_tokens"] = self.total_tokens
        return out


class UsageLedger(Protocol):
    """Where usage is kept: atomic increments, grouped reads."""

    shared: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, rows: Sequence[UsageRow], *, batch: str) -> None:
        """Add each row's counters to its (day, tenant, user, agent, model) totals, once
        per ``batch`` id (a batch already added is skipped), atomically."""
        ...

    async def query(
        self,
        *,
        since: str,
        until: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        group_by: Sequence[Dimension] = (),
    ) -> list[UsageRow]:
        """Totals of days ``since`` to ``until`` (inclusive, ``YYYY-MM-DD``), grouped."""
        ...

    async def erase_user(self, *, tenant_id: str, user_id: str) -> None:
        """Remove the user's identity from the ledger, keeping the tenant's totals exact:
        add every row of the user to the same (day, agent, model) of
        :data:`ERASED_USER` in the tenant and delete it, and keep doing so for what is
        added for the user during :data:`ERASURE_FENCE` seconds (a fence), in one atomic
        step. Erasing :data:`ERASED_USER` itself changes nothing."""
        ...


def group(
    rows: Sequence[UsageRow], group_by: Sequence[Dimension], *, keep_zero: bool = False
) -> list[UsageRow]:
    """Full-detail rows summed by ``group_by`` (for ledgers that cannot group themselves)."""
    out: dict[tuple[str | None, ...], UsageRow] = {}
    for row in rows:
        key = tuple(getattr(row, d) for d in group_by)
        target = out.get(key)
        if target is None:
            target = out[key] = UsageRow(**dict(zip(group_by, key, strict=True)))
        target.add(row)
    if not group_by and not out and keep_zero:
        return [UsageRow()]
    return [out[k] for k in sorted(out, key=lambda k: tuple(v or "" for v in k))]


def check_group_by(names: Sequence[str], allowed: Sequence[str] = DIMENSIONS) -> list[Dimension]:
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise InvalidInput(
            f"cannot group usage by {wrong[0]!r}; choose from {', '.join(allowed)}",
            field="group_by",
        )
    return list(dict.fromkeys(names))  # type: ignore[arg-type]


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
