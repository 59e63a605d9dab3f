"""SessionKey: equality, hashing and pickling behave like the plain triple it is."""

from __future__ import annotations

import copy
import dataclasses
import pickle

from agenthost import SessionKey


def test_keys_with_equal_parts_are_one_dict_key() -> None:
    a, b = SessionKey("t", "u", "s"), SessionKey("t", "u", "s")
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert SessionKey("t", "u", "s2") != a
    assert repr(a) == "SessionKey(tenant_id='t', user_id='u', session_id='s')"


def test_copies_and_pickles_rebuild_the_hash() -> None:
    key = SessionKey("t", "u", "s")
    object.__setattr__(key, "_hash", 0)  # as if hashed by another process
    for clone in (pickle.loads(pickle.dumps(key)), copy.copy(key), copy.deepcopy(key)):
        assert clone == key
        assert hash(clone) == hash(SessionKey("t", "u", "s"))
    assert hash(dataclasses.replace(key, user_id="v")) == hash(SessionKey("t", "v", "s"))
