"""Store and coordination URLs: one parser, strict about options."""

from __future__ import annotations

import pytest

from agenthost.errors import ConfigError
from agenthost.stores import SQLiteStore, open_store
from agenthost.urls import parse_url, redact


def test_sqlite_paths_and_durability() -> None:
    assert parse_url("sqlite:///agenthost.db").path == "agenthost.db"
    assert parse_url("sqlite:////var/lib/a.db").path == "/var/lib/a.db"
    assert parse_url("sqlite:///:memory:").path == ":memory:"
    full = parse_url("sqlite:///a.db?durability=full")
    assert (full.path, dict(full.options)) == ("a.db", {"durability": "full"})
    store = open_store("sqlite:///a.db?durability=full")
    assert isinstance(store, SQLiteStore) and store.durability == "full"
    normal = open_store("sqlite:///a.db?durability=normal")
    assert isinstance(normal, SQLiteStore) and normal.durability == "normal"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite:///a.db?durability=bogus", "durability='bogus' is not valid; durability takes"),
        ("sqlite:///a.db?durability=FULL", "durability takes 'normal' or 'full'"),
        ("sqlite:///a.db?durability=fullish", "durability takes 'normal' or 'full'"),
        ("sqlite:///a.db?durabilty=full", "unknown option 'durabilty'; did you mean 'durability'?"),
        ("sqlite:///a.db?durability=full&durability=normal", "'durability' is given twice"),
        ("sqlite:///a.db?mode=ro", "unknown option 'mode' (sqlite takes durability)"),
        ("sqlite:///a.db?durability", "malformed query"),
        ("memory://?x=1", "unknown option 'x' (memory takes no options)"),
        ("postgresql://h/db?migrate=maybe", "migrate takes true or false"),
        ("postgresql://h/db?max_size=0", "max_size takes a whole number >= 1"),
        ("postgresql://h/db?schema=a-b", "schema takes a plain identifier"),
        ("postgresql://h/db?lock_ttl=-1", "lock_ttl takes a positive number of seconds"),
        ("postgresql://h/db?migrat=false", "did you mean 'migrate'?"),
        ("postgresql://h/db?sslmod=disable", "did you mean 'sslmode'?"),
        ("redis://h:6379/0?prefx=a", "did you mean 'prefix'?"),
        ("redis://h:6379/0?retention=soon", "retention takes a positive number of seconds"),
        ("redis://h:6379/0?bogus_option=1", "unknown option 'bogus_option'"),
        ("mysql://h/db", "unknown scheme 'mysql'"),
        ("agenthost.db", "has no scheme"),
    ],
)
def test_unknown_or_invalid_options_are_errors(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_url(url)
    assert says in info.value.message
    with pytest.raises(ConfigError):
        open_store(url)


def test_driver_options_pass_through_and_ours_are_taken_off() -> None:
    pg = parse_url("postgres://u:pw@h:5/db?schema=s1&sslmode=disable&application_name=app")
    assert pg.scheme == "postgresql"
    assert pg.driver_url == "postgresql://u:pw@h:5/db?sslmode=disable&application_name=app"
    assert dict(pg.options) == {"schema": "s1"}
    redis = parse_url("rediss://h:6380/1?prefix=p&socket_timeout=2&ssl_cert_reqs=none")
    assert redis.driver_url == "rediss://h:6380/1?socket_timeout=2&ssl_cert_reqs=none"
    assert dict(redis.options) == {"prefix": "p"}


def test_messages_never_show_a_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_url("postgresql://u:hunter2@h/db?migrate=maybe")
    assert "hunter2" not in info.value.message and "u:***@h" in info.value.message
    assert redact("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
