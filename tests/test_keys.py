"""Ids in HTTP headers: one rule, read back exactly, anything else refused."""

from __future__ import annotations

import pytest

from agenthost.errors import InvalidId
from agenthost.keys import id_from_header, id_to_header

IDS = [
    "alice",
    "José",
    "用户",
    "a b",
    "team/alpha",
    "100%",
    "a+b",
    "x%2Fy",
    " padded ",
    "UTF-8''looks-encoded",
    "utf-8''lower",
    "'quote'",
    "ünï/çødé %41+",
]


@pytest.mark.parametrize("ident", IDS)
def test_every_id_survives_the_header_form_and_raw_utf8(ident: str) -> None:
    header = id_to_header(ident)
    assert header.isascii() and header == header.strip()
    assert id_from_header(header.encode("ascii"), "X-User-Id") == ident
    if ident == ident.strip() and not ident.lower().startswith("utf-8''"):
        assert id_from_header(ident.encode(), "X-User-Id") == ident


def test_plain_ascii_ids_are_sent_as_they_are() -> None:
    assert id_to_header("alice") == "alice"
    assert id_to_header("team/alpha 100%") == "team/alpha 100%"
    assert id_to_header("José") == "UTF-8''Jos%C3%A9"
    assert id_from_header(b"utf-8''Jos%C3%A9", "X-User-Id") == "José"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("José".encode("latin-1"), "is not UTF-8"),
        (b"UTF-8''Jos%E9", "after UTF-8''"),
        ("UTF-8''José".encode(), "after UTF-8''"),
        (b"", "must not be empty"),
        (b"UTF-8''a%00b", "control"),
        (b"x" * 256, "255"),
    ],
)
def test_bad_header_bytes_are_refused_naming_the_header(raw: bytes, says: str) -> None:
    with pytest.raises(InvalidId) as info:
        id_from_header(raw, "X-Tenant-Id")
    assert "X-Tenant-Id" in info.value.message and says in info.value.message
    assert info.value.field == "X-Tenant-Id"
