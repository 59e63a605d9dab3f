"""Identity: the session key and the validation of its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

from agenthost.errors import InvalidId

MAX_ID_LENGTH = 255
DEFAULT_ID = "default"
HEADER_PREFIX = "UTF-8''"
"""Marks an id header value as percent-encoded UTF-8 (the RFC 8187 form)."""


def validate_id(value: object, field: str) -> str:
    """Return ``value`` if it is a valid id, else raise :class:`InvalidId` naming ``field``.

    Valid ids are strings of 1-255 printable characters (no control characters).
    """
    if not isinstance(value, str):
        raise InvalidId(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not value:
        raise InvalidId(f"{field} must not be empty", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidId(
            f"{field} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}", field=field
        )
    if not value.isprintable():
        raise InvalidId(f"{field} contains control or non-printable characters", field=field)
    return value


def id_from_header(raw: bytes, header: str) -> str:
    """The id an ``X-User-Id``, ``X-Tenant-Id`` or ``X-Session-Id`` header names.

    One rule, so that a header and a JSON body name the same user:

    - the header's bytes are the id in UTF-8 (``X-User-Id: José`` sent as UTF-8);
    - or, for clients that can send only ASCII (a browser's ``fetch``), ``UTF-8''``
      followed by the id's UTF-8 percent-encoded (``UTF-8''Jos%C3%A9``), as RFC 8187
      writes non-ASCII header parameters. Leading or trailing spaces of an id survive
      only in this form (HTTP strips them from a header value).

    Bytes that are not UTF-8 (Latin-1 ``é`` sent as one byte) are refused with
    :class:`InvalidId`, never read as some other user's id.
    """
    if raw[: len(HEADER_PREFIX)].lower() == HEADER_PREFIX.lower().encode():
        encoded = raw[len(HEADER_PREFIX) :]
        try:
            value = unquote_to_bytes(encoded).decode("utf-8") if encoded.isascii() else None
        except UnicodeDecodeError:
            value = None
        if value is None:
            raise InvalidId(
                f"the {header} header is not valid: after UTF-8'' send the id's UTF-8 bytes "
                "percent-encoded (e.g. UTF-8''Jos%C3%A9)",
                field=header,
            )
    else:
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidId(
                f"the {header} header is not UTF-8: send the id as UTF-8, or as UTF-8'' "
                "followed by its percent-encoded UTF-8 (e.g. UTF-8''Jos%C3%A9)",
                field=header,
            ) from None
    return validate_id(value, header)


def id_to_header(value: str) -> str:
    """An id as an ASCII header value that :func:`id_from_header` reads back exactly:
    itself when it is plain printable ASCII, else the ``UTF-8''`` percent-encoded form."""
    plain = (
        value.isascii()
        and value.isprintable()
        and value == value.strip()
        and not value.lower().startswith(HEADER_PREFIX.lower())
    )
    return value if plain else HEADER_PREFIX + quote(value.encode("utf-8"), safe="")


@dataclass(frozen=True, slots=True)
class SessionKey:
    """``(tenant_id, user_id, session_id)``: the only handle to a session."""

    tenant_id: str
    user_id: str
    session_id: str
    # A turn looks its key up in several dicts (locks, live cache, store): hash it once.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.tenant_id, self.user_id, self.session_id)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[SessionKey], tuple[str, str, str]]:
        # rebuilt, not restored: string hashes differ from one process to the next
        return SessionKey, (self.tenant_id, self.user_id, self.session_id)

    @classmethod
    def of(
        cls,
        *,
        tenant_id: str = DEFAULT_ID,
        user_id: str = DEFAULT_ID,
        session_id: str = DEFAULT_ID,
    ) -> SessionKey:
        """Build a key, validating every part."""
        return cls(
            validate_id(tenant_id, "tenant_id"),
            validate_id(user_id, "user_id"),
            validate_id(session_id, "session_id"),
        )

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.user_id}/{self.session_id}"
