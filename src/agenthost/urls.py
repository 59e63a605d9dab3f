"""Store and coordination URLs: the one parser, and the options each scheme takes.

=================  ==========================================  ===============================
scheme             agenthost's options                         the rest of the query
=================  ==========================================  ===============================
``memory://``      none                                        none
``sqlite:///p``    ``durability`` = ``normal`` | ``full``      none
``postgresql://``  ``schema``, ``min_size``, ``max_size``,     asyncpg's (``sslmode``, ...);
                   ``migrate`` = ``true`` | ``false``,         other names are PostgreSQL
                   ``lock_ttl``, ``lock_wait``                 server settings
``redis://``       ``prefix``, ``retention``, ``lock_ttl``,    redis-py's (``socket_timeout``,
                   ``lock_wait``                               ``ssl_cert_reqs``, ...)
=================  ==========================================  ===============================

``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` name the file
(``sqlite:///:memory:`` a private in-memory database); ``postgres://`` means
``postgresql://`` and ``rediss://`` is Redis over TLS.

An unknown option, an option given twice or a bad value is a
:class:`~agenthost.errors.ConfigError` that names the option and what it takes,
never a silent default. agenthost's options are taken off the URL before the
driver sees it (:attr:`StoreURL.driver_url`); error messages show the URL with
its password masked (:func:`redact`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agenthost.errors import ConfigError

SCHEMES = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "redis": "redis",
    "rediss": "rediss",
}
"""Accepted scheme -> canonical scheme."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")

# The DSN parameters asyncpg reads itself; any other name becomes a server setting.
_ASYNCPG = (
    "host",
    "port",
    "dbname",
    "database",
    "user",
    "password",
    "passfile",
    "service",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslnegotiation",
    "sslcrl",
    "sslpassword",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
)


def _choice(*allowed: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in allowed else " or ".join(repr(a) for a in allowed)

    return check


def _boolean(value: str) -> str | None:
    return None if value.lower() in (*_TRUE, *_FALSE) else "true or false"


def _count(minimum: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value.isdigit() and int(value) >= minimum else f"a whole number >= {minimum}"

    return check


def _seconds(value: str) -> str | None:
    try:
        ok = float(value) > 0
    except ValueError:
        ok = False
    return None if ok else "a positive number of seconds"


def _identifier(value: str) -> str | None:
    return None if _IDENTIFIER.fullmatch(value) else "a plain identifier (letters, digits, _)"


def _prefix(value: str) -> str | None:
    return None if value and "\x1f" not in value else "a non-empty key prefix"


Check = Callable[[str], "str | None"]
"""Returns None for a good value, else what the option takes."""

OPTIONS: dict[str, dict[str, Check]] = {
    "memory": {},
    "sqlite": {"durability": _choice("normal", "full")},
    "postgresql": {
        "schema": _identifier,
        "min_size": _count(0),
        "max_size": _count(1),
        "migrate": _boolean,
        "lock_ttl": _seconds,
        "lock_wait": _seconds,
    },
    "redis": {
        "prefix": _prefix,
        "retention": _seconds,
        "lock_ttl": _seconds,
        "lock_wait": _seconds,
    },
}
OPTIONS["rediss"] = OPTIONS["redis"]


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed store (or coordination) URL."""

    url: str
    """As given."""
    scheme: str
    """Canonical: ``memory``, ``sqlite``, ``postgresql``, ``redis`` or ``rediss``."""
    driver_url: str
    """The URL without agenthost's options: what asyncpg or redis-py is given."""
    options: Mapping[str, str] = field(default_factory=dict)
    """agenthost's options, checked."""
    path: str = ""
    """``sqlite``: the database file (``:memory:`` for a private in-memory one)."""

    def flag(self, name: str, default: bool) -> bool:
        value = self.options.get(name)
        return default if value is None else value.lower() in _TRUE


def redact(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_url(url: str, *, what: str = "store URL") -> StoreURL:
    """Parse and check a store or coordination URL (``what`` names it in errors)."""
    scheme_text, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"{what} {redact(url)!r} has no scheme; e.g. sqlite:///agenthost.db")
    scheme = SCHEMES.get(scheme_text.lower())
    if scheme is None:
        raise ConfigError(
            f"{what} {redact(url)!r}: unknown scheme {scheme_text!r}; "
            "use memory://, sqlite:///, postgresql:// or redis://"
        )
    before, _, query = rest.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"{what} {redact(url)!r}: malformed query {query!r}") from None
    ours = OPTIONS[scheme]
    options: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in ours:
            if name in options:
                raise ConfigError(f"{what} {redact(url)!r}: option {name!r} is given twice")
            problem = ours[name](value)
            if problem is not None:
                raise ConfigError(
                    f"{what} {redact(url)!r}: {name}={value!r} is not valid; {name} takes {problem}"
                )
            options[name] = value
        else:
            _check_driver_option(scheme, name, what, url)
            passed.append((name, value))
    if scheme == "sqlite":
        path = before.removeprefix("/") or "agenthost.db"
        return StoreURL(url, scheme, f"sqlite:///{path}", options, path)
    if scheme == "memory":
        return StoreURL(url, scheme, "memory://", options)
    parts = urlsplit(f"{scheme}://{rest}")
    driver = urlunsplit(parts._replace(query=urlencode(passed)))
    return StoreURL(url, scheme, driver, options)


def _check_driver_option(scheme: str, name: str, what: str, url: str) -> None:
    ours = sorted(OPTIONS[scheme])
    known: list[str] = []
    if scheme == "postgresql":
        known = list(_ASYNCPG)
    elif scheme in ("redis", "rediss"):
        known = _redis_options()
    if name in known:
        return
    close = difflib.get_close_matches(name, [*ours, *known], n=1, cutoff=0.75)
    # PostgreSQL: any other name is a server setting, which the server itself checks
    # when connecting; a near miss of a known name is a typo, not a setting.
    if scheme == "postgresql" and not close:
        return
    hint = f"; did you mean {close[0]!r}?" if close else ""
    takes = ", ".join(ours) if ours else "no options"
    raise ConfigError(
        f"{what} {redact(url)!r}: unknown option {name!r}{hint} "
        f"({scheme} takes {takes}" + (", and the driver's own" if known else "") + ")"
    )


def _redis_options() -> list[str]:
    """The query parameters redis-py accepts (its URL parsers and connection arguments)."""
    try:
        import inspect

        from redis.asyncio import connection
    except ImportError:  # the store itself will say which extra to install
        return []
    names = set(connection.URL_QUERY_ARGUMENT_PARSERS)
    for cls in (connection.AbstractConnection, connection.Connection, connection.SSLConnection):
        names.update(inspect.signature(cls.__init__).parameters)
    names -= {"self", "args", "kwargs"}
    return sorted(names)


__all__ = ["OPTIONS", "SCHEMES", "StoreURL", "parse_url", "redact"]
