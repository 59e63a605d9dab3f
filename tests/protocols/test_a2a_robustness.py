"""Hostile and broken input to ``POST /a2a``: a JSON-RPC error with the right code, never a 5xx,
never a reset connection, never a traceback in the log; for v1.0 names and v0.3 aliases."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from support.a2a_rpc import A2A, open_a2a
from support.inprocess import InProcessServer
from support.serve import bearer

PARSE, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602


def rpc(method: str, params: str) -> bytes:
    """A request whose params are the JSON text ``params`` (which may be broken on purpose)."""
    return f'{{"jsonrpc": "2.0", "id": 1, "method": "{method}", "params": {params}}}'.encode()


def message(part: str, *, v03: bool, context: str = "") -> str:
    """A user message (JSON text) with one part given as JSON text."""
    ids = '"messageId": "m1"' + (f', "contextId": {context}' if context else "")
    if v03:
        return f'{{"kind": "message", "role": "user", {ids}, "parts": [{part}]}}'
    return f'{{"role": "ROLE_USER", {ids}, "parts": [{part}]}}'


def send(part: str, *, v03: bool, context: str = "", extra: str = "") -> bytes:
    method = "message/send" if v03 else "SendMessage"
    return rpc(method, f'{{"message": {message(part, v03=v03, context=context)}{extra}}}')


def nested(depth: int, inner: str = "0") -> str:
    return "[" * depth + inner + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a": ' * depth + "0" + "}" * depth


TEXT = '{"text": "hi"}'
TEXT03 = '{"kind": "text", "text": "hi"}'
HUGE = "9" * 5000  # more digits than Python turns into an int
BIG = str(10**30)  # a valid integer no int32 holds
ENORMOUS = str(10**400)  # a valid integer no double holds

CASES: list[tuple[str, bytes, int]] = [
    # nesting: the parser's limit, not the interpreter's stack
    ("deep params v1.0", rpc("GetTask", f'{{"id": "x", "a": {nested(1000)}}}'), PARSE),
    ("deep params v0.3", rpc("tasks/get", f'{{"id": "x", "a": {nested(1000)}}}'), PARSE),
    ("deep data v1.0", send(f'{{"data": {nested_objects(1000)}}}', v03=False), PARSE),
    ("deep data v0.3", send(f'{{"kind": "data", "data": {nested_objects(1000)}}}', v03=True),
     PARSE),
    ("deep body", nested(100_000).encode(), PARSE),
    ("deep object body", nested_objects(20_000).encode(), PARSE),
    # not UTF-8
    ("bad utf-8 contextId",
     rpc("ListTasks", '{"contextId": "ab"}').replace(b'"ab"', b'"\xff\xfe"'), PARSE),
    ("bad utf-8 text v0.3",
     send('{"kind": "text", "text": "cafe"}', v03=True).replace(b"cafe", b"caf\xe9"), PARSE),
    # contextId that is no session id
    ("long contextId", rpc("ListTasks", json.dumps({"contextId": "x" * 300})), INVALID_PARAMS),
    ("nul in contextId", rpc("ListTasks", json.dumps({"contextId": "a\x00b"})), INVALID_PARAMS),
    ("escape in contextId", rpc("ListTasks", json.dumps({"contextId": "a\x1bb"})),
     INVALID_PARAMS),
    ("newline contextId v1.0", send(TEXT, v03=False, context=json.dumps("a\nb")),
     INVALID_PARAMS),
    ("long contextId v0.3", send(TEXT03, v03=True, context=json.dumps("y" * 256)),
     INVALID_PARAMS),
    # numbers
    ("huge pageSize", rpc("ListTasks", f'{{"pageSize": {HUGE}}}'), PARSE),
    ("huge historyLength v0.3", rpc("tasks/get", f'{{"id": "x", "historyLength": {HUGE}}}'),
     PARSE),
    ("big pageSize", rpc("ListTasks", f'{{"pageSize": {BIG}}}'), INVALID_PARAMS),
    ("big historyLength v1.0", rpc("GetTask", f'{{"id": "x", "historyLength": {BIG}}}'),
     INVALID_PARAMS),
    ("big historyLength v0.3", rpc("tasks/get", f'{{"id": "x", "historyLength": {BIG}}}'),
     INVALID_PARAMS),
    ("big send historyLength v0.3",
     send(TEXT03, v03=True, extra=f', "configuration": {{"historyLength": {BIG}}}'),
     INVALID_PARAMS),
    ("enormous data v1.0", send(f'{{"data": {ENORMOUS}}}', v03=False), INVALID_PARAMS),
    ("enormous data v0.3", send(f'{{"kind": "data", "data": {{"n": {ENORMOUS}}}}}', v03=True),
     INVALID_PARAMS),
    ("1e400 data v1.0", send('{"data": 1e400}', v03=False), INVALID_PARAMS),
    ("NaN", rpc("ListTasks", '{"pageSize": NaN}'), PARSE),
    ("Infinity in data v0.3", send('{"kind": "data", "data": {"x": -Infinity}}', v03=True),
     PARSE),
    ("negative pageSize", rpc("ListTasks", '{"pageSize": -1}'), INVALID_PARAMS),
    ("negative pageToken", rpc("ListTasks", '{"pageToken": "-1"}'), INVALID_PARAMS),
    ("negative historyLength v1.0", rpc("GetTask", '{"id": "x", "historyLength": -1}'),
     INVALID_PARAMS),
    ("negative historyLength v0.3", rpc("tasks/get", '{"id": "x", "historyLength": -1}'),
     INVALID_PARAMS),
    # not a request at all
    ("empty body", b"", PARSE),
    ("null body", b"null", INVALID_REQUEST),
    ("string body", b'"hello"', INVALID_REQUEST),
]  # fmt: skip


@pytest.fixture
async def a2a() -> AsyncIterator[A2A]:
    async for endpoint in open_a2a():
        yield endpoint


def test_the_bad_utf8_cases_are_bad_utf8() -> None:
    for label, body, _ in CASES:
        if label.startswith("bad utf-8"):
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")


@pytest.mark.parametrize(("label", "body", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_in_process(
    a2a: A2A, caplog: pytest.LogCaptureFixture, label: str, body: bytes, code: int
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await a2a.post(body)
    assert reply["error"]["code"] == code, reply
    assert reply["id"] == (None if code in (PARSE, INVALID_REQUEST) else 1)
    assert HUGE not in reply["error"]["message"] and ENORMOUS not in reply["error"]["message"]
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [r.getMessage() for r in noisy]
    assert (await a2a.result("ListTasks", {}))["tasks"] == []  # nothing was started


@pytest.mark.parametrize("v03", [False, True], ids=["v1.0", "v0.3"])
async def test_nesting_up_to_the_limit_is_accepted(a2a: A2A, v03: bool) -> None:
    """50 levels in all: request, params, message, parts and part take 5 of them."""

    def value(depth: int) -> Any:  # data nesting ``depth`` levels (v0.3 data is an object)
        inner: Any = 0
        for _ in range(depth - 1 if v03 else depth):
            inner = [inner]
        return {"d": inner} if v03 else inner

    def part(depth: int) -> str:
        return json.dumps({"kind": "data", "data": value(depth)} if v03 else {"data": value(depth)})

    reply = await a2a.post(send(part(45), v03=v03))
    task = reply["result"] if v03 else reply["result"]["task"]
    assert task["artifacts"][0]["parts"][0]["text"] == "You said: " + json.dumps(value(45))
    reply = await a2a.post(send(part(46), v03=v03))
    assert reply["error"]["code"] == PARSE and "50 levels" in reply["error"]["message"]


def test_bad_input_to_a_real_server_keeps_the_connection(keyed_server: InProcessServer) -> None:
    """Over real TCP with keep-alive: every answer is a 200 on the same connection, and
    nothing the server logs while answering them is a traceback or a 5xx."""
    logged = len(keyed_server.logs())
    headers = {**bearer("alice"), "Content-Type": "application/json"}
    with httpx.Client(base_url=keyed_server.url, headers=headers, timeout=30.0) as http:
        for label, body, code in CASES:
            response = http.post("/a2a", content=body)
            assert response.status_code == 200, (label, response.status_code, response.text)
            assert response.json()["error"]["code"] == code, (label, response.text)
        listed = http.post("/a2a", content=rpc("ListTasks", '{"pageSize": 1}'))
        assert listed.status_code == 200 and "result" in listed.json()
    log = keyed_server.logs()[logged:]
    assert "Traceback" not in log and "internal_error" not in log, log[-3000:]
    assert "ERROR" not in log, log[-3000:]
