"""Per-user credentials for MCP servers: who asks, what they present, and its fingerprint.

A credential provider is a function of an :class:`MCPCaller` (tenant, user,
server) returning the headers to send (streamable HTTP) or the environment
variables to start the process with (stdio), or ``None`` for none. It may be
sync or async. Connections are pooled by the credential's fingerprint, so two
callers share a connection only when they present exactly the same credential.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class MCPCaller:
    """Whom a credential is for: a user of a tenant, calling one MCP server."""

    tenant_id: str
    user_id: str
    server: str


Credential = Mapping[str, str]
CredentialProvider = Callable[[MCPCaller], Credential | Awaitable[Credential | None] | None]

NO_CREDENTIAL: Credential = {}


async def credential_for(provider: CredentialProvider | None, caller: MCPCaller) -> Credential:
    """The provider's credential for ``caller``, checked to be a str -> str mapping."""
    if provider is None:
        return NO_CREDENTIAL
    value: Any = provider(caller)
    if inspect.isawaitable(value):
        value = await value
    if value is None:
        return NO_CREDENTIAL
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(
            f"the credential provider of MCP server {caller.server!r} returned a "
            f"{type(value).__name__}; it must return a mapping of str to str, or None"
        )
    return value


def fingerprint(credential: Credential) -> str:
    """A stable digest of a credential: the pool key (never logged or shown)."""
    if not credential:
        return "anonymous"
    return hashlib.sha256(orjson.dumps(sorted(credential.items()))).hexdigest()
