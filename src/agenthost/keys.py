"""Identity: the session key and the validation of its parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from agenthost.errors import InvalidId

MAX_ID_LENGTH = 255
DEFAULT_ID = "default"


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
