"""Who is calling: the ``Identity`` dependency for every route.

Modes (``Settings.auth``):

- ``none``: development. Everyone is trusted (admin routes included); the user
  and tenant come from the request (``user_id`` in the body, ``X-User-Id`` /
  ``X-Tenant-Id`` headers), defaulting to ``"default"``.
- ``api-keys``: ``Authorization: Bearer <key>``; each key maps to a tenant and a
  user, a service (user ``*``: may name any user of its tenant) or an admin
  (user ``!admin``). Keys are compared in constant time and never logged.
- ``jwt``: HS256 (shared secret) or RS256 (public key) tokens; ``sub`` is the
  user, the tenant is in a configurable claim (default ``tenant``; missing means
  ``"default"``), the ``admin`` scope (``scope``/``scp``/``scopes`` claim) makes
  an admin. ``exp`` and ``sub`` are required; signature, expiry and (if set)
  audience are checked.

Id headers (``X-User-Id``, ``X-Tenant-Id``, and ``X-Session-Id`` where a route reads
it) follow :func:`agenthost.keys.id_from_header`: UTF-8 bytes, or ``UTF-8''`` and
the percent-encoded UTF-8, so a header names the same user as the body does.

A route turns the identity into the :class:`Principal` it acts for with
``identity.principal(body.user_id)``: a user credential may act only for its
own user (naming another is 403); service and admin credentials must name the
user; admins may also name another tenant.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agenthost.errors import ConfigError, Forbidden, InvalidId, InvalidInput, Unauthorized
from agenthost.keys import DEFAULT_ID, id_from_header, validate_id
from agenthost.settings import ADMIN_USER, SERVICE_USER, ApiKey, Settings


@dataclass(frozen=True, slots=True)
class Principal:
    """The tenant and user a request acts for: the first two parts of every session key."""

    tenant_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller, plus the user and tenant it named in headers.

    ``user_id`` is the credential's own user (``None`` for a service or admin
    key); ``delegate`` lets it name other users of its tenant; ``any_tenant``
    lets it name other tenants (admins, and everyone under ``--auth none``).
    """

    tenant_id: str
    user_id: str | None
    admin: bool = False
    delegate: bool = False
    any_tenant: bool = False
    named_user: str | None = None
    named_tenant: str | None = None

    def principal(self, user_id: str | None = None) -> Principal:
        """The principal for a request that names ``user_id`` (body) or ``X-User-Id``."""
        if user_id is not None and self.named_user is not None and user_id != self.named_user:
            raise InvalidInput(
                "user_id in the body and the X-User-Id header name different users",
                field="user_id",
            )
        wanted = user_id if user_id is not None else self.named_user
        tenant = self._tenant()
        if wanted is None:
            if self.user_id is None:
                raise InvalidInput(
                    "this credential acts for users of its tenant: name one with user_id "
                    "or the X-User-Id header",
                    field="user_id",
                )
            return Principal(tenant, self.user_id)
        validate_id(wanted, "user_id")
        if wanted != self.user_id and not self.delegate:
            raise Forbidden("this credential may act only for its own user")
        return Principal(tenant, wanted)

    def _tenant(self) -> str:
        named = self.named_tenant
        if named is None or named == self.tenant_id:
            return self.tenant_id
        if not self.any_tenant:
            raise Forbidden("this credential may act only in its own tenant")
        return validate_id(named, "tenant_id")

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden("this route needs an admin credential")


class Authenticator(Protocol):
    def authenticate(self, token: str | None) -> Identity: ...


class NoAuth:
    """``--auth none``: trust the request; only safe on loopback."""

    def authenticate(self, token: str | None) -> Identity:
        return Identity(DEFAULT_ID, DEFAULT_ID, admin=True, delegate=True, any_tenant=True)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class ApiKeyAuth:
    """Keys are kept as SHA-256 digests and every one is compared, in constant time."""

    def __init__(self, keys: list[ApiKey]) -> None:
        if not keys:
            raise ConfigError("api-keys auth needs at least one key")
        self._keys = [(_digest(k.secret), _identity_of(k)) for k in keys]

    def authenticate(self, token: str | None) -> Identity:
        if not token:
            raise Unauthorized("missing credentials: send Authorization: Bearer <api key>")
        digest = _digest(token)
        found: Identity | None = None
        for candidate, identity in self._keys:
            if hmac.compare_digest(candidate, digest):
                found = identity
        if found is None:
            raise Unauthorized("invalid API key")
        return found


def _identity_of(key: ApiKey) -> Identity:
    try:
        tenant = validate_id(key.tenant_id, "tenant_id")
        if key.user == ADMIN_USER:
            return Identity(tenant, None, admin=True, delegate=True, any_tenant=True)
        if key.user == SERVICE_USER:
            return Identity(tenant, None, delegate=True)
        return Identity(tenant, validate_id(key.user, "user_id"))
    except InvalidId as exc:
        raise ConfigError(f"API key for {key.tenant_id}:{key.user}: {exc.message}") from None


class JwtAuth:
    def __init__(
        self,
        *,
        secret: str | None,
        public_key: str | None,
        tenant_claim: str = "tenant",
        audience: str | None = None,
    ) -> None:
        self._keys: dict[str, Any] = {}
        if secret:
            self._keys["HS256"] = secret
        if public_key:
            self._keys["RS256"] = _read_public_key(public_key)
        if not self._keys:
            raise ConfigError("jwt auth needs a secret (HS256) or a public key (RS256)")
        self.tenant_claim = tenant_claim
        self.audience = audience

    def authenticate(self, token: str | None) -> Identity:
        if not token:
            raise Unauthorized("missing credentials: send Authorization: Bearer <token>")
        claims = self._decode(token)
        sub = claims.get("sub")
        tenant = claims.get(self.tenant_claim, DEFAULT_ID)
        try:
            user = validate_id(sub, "sub")
            tenant = validate_id(tenant, self.tenant_claim)
        except InvalidId as exc:
            raise Unauthorized(f"invalid token: {exc.message}") from None
        admin = "admin" in _scopes(claims)
        return Identity(tenant, user, admin=admin, delegate=admin, any_tenant=admin)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            algorithm = str(jwt.get_unverified_header(token).get("alg"))
            key = self._keys.get(algorithm)
            if key is None:
                raise Unauthorized(f"token algorithm must be one of {sorted(self._keys)}")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        return claims


def _scopes(claims: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for name in ("scope", "scp", "scopes"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return found


def _read_public_key(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"jwt public key: {value!r} is neither PEM text nor a readable file")
    return path.read_text()


def build_authenticator(settings: Settings) -> Authenticator:
    if settings.auth == "api-keys":
        return ApiKeyAuth(settings.api_keys)
    if settings.auth == "jwt":
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        return JwtAuth(
            secret=secret,
            public_key=settings.jwt_public_key,
            tenant_claim=settings.jwt_tenant_claim,
            audience=settings.jwt_audience,
        )
    return NoAuth()


def header_id(value: str | None, header: str) -> str | None:
    """An id header's value as :func:`agenthost.keys.id_from_header` reads it (422 if bad).

    Starlette hands header values over decoded as Latin-1, which maps every byte to one
    character: encoding them back gives the bytes the client sent.
    """
    return None if value is None else id_from_header(value.encode("latin-1"), header)


_bearer = HTTPBearer(auto_error=False, description="An API key or a JWT, per the server's mode")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None for any other form)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def identify(
    authenticator: Authenticator, token: str | None, user: str | None, tenant: str | None
) -> Identity:
    """The caller: its credential checked, the user and tenant it named in headers read."""
    identity = authenticator.authenticate(token)
    if user is None and tenant is None:
        return identity
    return replace(
        identity,
        named_user=header_id(user, "X-User-Id"),
        named_tenant=header_id(tenant, "X-Tenant-Id"),
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_user_id: Annotated[
        str | None,
        Header(
            description="The user a service or admin credential acts for: UTF-8, or UTF-8'' "
            "and the percent-encoded UTF-8 (UTF-8''Jos%C3%A9)"
        ),
    ] = None,
    x_tenant_id: Annotated[
        str | None,
        Header(description="The tenant an admin (or --auth none) acts in; encoded as X-User-Id"),
    ] = None,
) -> Identity:
    """FastAPI dependency: the caller's :class:`Identity` (401 if credentials are bad)."""
    token = credentials.credentials if credentials else None
    return identify(request.app.state.authenticator, token, x_user_id, x_tenant_id)


async def require_admin(identity: Annotated[Identity, Depends(authenticate)]) -> Identity:
    """FastAPI dependency for admin routes (403 for a non-admin credential)."""
    identity.require_admin()
    return identity


CurrentIdentity = Annotated[Identity, Depends(authenticate)]
AdminIdentity = Annotated[Identity, Depends(require_admin)]
