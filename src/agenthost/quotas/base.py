"""What every quota backend shares: the checks it is asked to count, and its protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from agenthost.quotas.limits import Limits, Overrides, TenantLimits

Kind = Literal["rate", "turns", "sessions", "tokens"]
SEP = "\x1f"  # ids are printable: a control character cannot occur inside one


@dataclass(frozen=True, slots=True)
class Check:
    """One limit to check and count: ``limit`` members of ``kind`` in scope ``scope``.

    ``member`` is what is counted (a request token, a session); ``seconds`` how long
    it counts (the rate window, the lease, the session TTL; for tokens, until the
    day's counter may be dropped).
    """

    kind: Kind
    scope: str
    limit: int
    member: str
    seconds: float
    level: Literal["user", "tenant"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which check refused (its index) and, when known, seconds until it may pass."""

    index: int
    retry_after: float | None


class QuotaBackend(Protocol):
    """Where counters live: in this process, Redis or PostgreSQL.

    Every method is atomic on the backend's side; none is called unless a limit applies.
    """

    shared: bool

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        """Check all; if every one passes, count all (else count none)."""
        ...

    async def release(self, checks: Sequence[Check]) -> None:
        """Stop counting these members (turn leases when a turn ends)."""
        ...

    async def renew(self, checks: Sequence[Check]) -> None:
        """Extend these leases by their ``seconds`` from now."""
        ...

    async def add_tokens(self, checks: Sequence[Check], tokens: int) -> None: ...

    async def overrides(self) -> Overrides: ...

    async def overrides_version(self) -> str:
        """Changes whenever an override does (cheap to ask)."""
        ...

    async def set_tenant(self, tenant_id: str, limits: TenantLimits | None) -> None: ...

    async def set_user(self, tenant_id: str, user_id: str, limits: Limits | None) -> None: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...
