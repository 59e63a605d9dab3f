"""Idempotency keys: a retried request runs its turn once, across every process.

A face that receives a key (the ``Idempotency-Key`` header, an A2A ``messageId``)
claims it through :meth:`agenthost.runs.Runs.claim` before running anything. The
claim is one atomic step at the store (:meth:`RunLogStore.open_run_log` with a
record): it either makes this caller the one that runs the request, under a run
id fixed now, or returns the record of whoever claimed it first. A retry then
gets that run's result, or follows the run while it is still going; a different
request under the same key is refused (422), since the client reused a key.

Keys are scoped to the caller (tenant and user): two users' keys never meet.
A record lives ``ttl`` seconds (``idempotency_ttl``, default a day); after that
the key may be claimed anew. A run that never began (refused at once: a busy
session, a pending approval) releases its key, so a retry can run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agenthost.errors import IdempotencyKeyReused
from agenthost.keys import SessionKey, validate_id
from agenthost.stores.runlog import IdempotencyRecord, fingerprint

DEFAULT_TTL = 86_400.0


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a key: ``owned`` means this caller runs the request."""

    record: IdempotencyRecord
    owned: bool

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def key(self) -> SessionKey:
        r = self.record
        return SessionKey(r.tenant_id, r.user_id, r.session_id)

    @property
    def result(self) -> dict[str, Any] | None:
        """The run's terminal event, once it finished."""
        return self.record.result


def new_record(
    key: SessionKey,
    idempotency_key: str,
    request: dict[str, Any],
    *,
    run_id: str,
    now: float,
    ttl: float,
) -> IdempotencyRecord:
    """The record a claim stores: ``request`` is what identifies the request (fingerprinted)."""
    validate_id(idempotency_key, "Idempotency-Key")
    return IdempotencyRecord(
        key.tenant_id,
        key.user_id,
        idempotency_key,
        fingerprint(request),
        run_id,
        key.session_id,
        now,
        now + ttl,
    )


def check_same_request(held: IdempotencyRecord, mine: IdempotencyRecord) -> None:
    """Refuse a different request under a key already used (the client reused a key)."""
    if held.fingerprint != mine.fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {mine.key!r} was used for a different request "
            f"(run {held.run_id}); use a new key for a new request"
        )
