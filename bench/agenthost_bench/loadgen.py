"""A small HTTP/1.1 load generator for B5/B7, run in its own process:

    python -m agenthost_bench.loadgen --url http://127.0.0.1:8000 \\
        --connections 64 --users 1000 --seconds 10 --warmup 2

Each of ``connections`` keep-alive connections sends ``POST /v1/chat`` turns
back to back. Users are taken round robin from a shared cursor, skipping a user
whose previous turn is still in flight, so a user's turns stay ordered but
travel over different connections (and so, with several server workers, reach
different processes). Afterwards every user's stored history is read back and
compared with exactly the turns that succeeded, in order. Prints one JSON object.

The client speaks just enough HTTP/1.1 over asyncio protocols (uvloop when
installed) to cost the machine far less than a general-purpose client would,
since it shares the CPU with the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, cast

import orjson


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time; Content-Length bodies only."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                waiter.set_exception(RuntimeError("chunked responses are not supported"))
                return
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        self.waiter = None
        waiter.set_result((int(head[0].split()[1]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


def _request(method: str, host: str, path: str, body: bytes = b"", user: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    if user:
        lines.append(f"X-User-Id: {user}")
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def message(user: int, turn: int) -> str:
    return f"user {user} turn {turn}: hello there"


class Load:
    """The shared state of one run: whose turn is next, what each user was sent."""

    def __init__(self, users: int, prefix: str = "") -> None:
        self.users = users
        self.ids = [f"{prefix}user-{u}" for u in range(users)]
        self.sent: list[list[str]] = [[] for _ in range(users)]
        self.busy = [False] * users
        self.cursor = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.requests = 0
        self.attempts = 0

    def next_user(self) -> int:
        for _ in range(self.users):
            user = self.cursor
            self.cursor = (self.cursor + 1) % self.users
            if not self.busy[user]:
                self.busy[user] = True
                return user
        raise RuntimeError("more connections than users")

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])


async def _open(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _transport, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


async def _drive(
    load: Load, conn: _Connection, netloc: str, measure_from: float, stop_at: float
) -> None:
    clock = time.perf_counter
    while clock() < stop_at:
        user = load.next_user()
        load.attempts += 1
        text = message(user, load.attempts)
        user_id = load.ids[user]
        body = orjson.dumps({"message": text, "user_id": user_id})
        payload = _request("POST", netloc, "/v1/chat", body)
        began = clock()
        try:
            status, data = await conn.request(payload)
        finally:
            load.busy[user] = False
        ended = clock()
        if status != 200:
            load.error(f"{status} {data.decode(errors='replace')}")
            continue
        reply = orjson.loads(data)
        if reply.get("user_id") != user_id or reply.get("reply") != f"You said: {text}":
            load.error(f"wrong reply for {user_id}: {data.decode(errors='replace')}")
            continue
        load.sent[user].append(text)
        if began >= measure_from and ended <= stop_at:
            load.latencies.append(ended - began)
            load.requests += 1


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _verify(load: Load, host: str, port: int, netloc: str) -> dict[str, Any]:
    """Read every user's history back: exactly the turns sent to it, in order, with replies."""
    wrong: list[str] = []

    async def check(conn: _Connection, user: int) -> None:
        messages: list[dict[str, Any]] = []
        after = 0
        while True:
            path = f"/v1/sessions/default/messages?limit=1000&after_seq={after}"
            status, data = await conn.request(_request("GET", netloc, path, user=load.ids[user]))
            if status == 404 and not load.sent[user]:
                return
            if status != 200:
                wrong.append(f"{load.ids[user]}: {status}")
                return
            page = orjson.loads(data)
            messages += page["messages"]
            if page.get("next_after_seq") is None:
                break
            after = page["next_after_seq"]
        expected: list[tuple[str, str]] = []
        for text in load.sent[user]:
            expected += [("user", text), ("assistant", f"You said: {text}")]
        if [(m["role"], m["content"]) for m in messages] != expected:
            wrong.append(f"{load.ids[user]}: {len(messages)} messages, expected {len(expected)}")

    conns = [await _open(host, port) for _ in range(8)]
    for group in _chunks(list(range(load.users)), len(conns)):
        await asyncio.gather(*(check(c, u) for c, u in zip(conns, group, strict=False)))
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    return {
        "users_verified": load.users - len(wrong),
        "users_wrong": len(wrong),
        "wrong_samples": wrong[:5],
    }


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered), max(1, -(-len(ordered) * pct // 100))) - 1
    return ordered[int(index)]


async def run(
    url: str,
    *,
    connections: int,
    users: int,
    seconds: float,
    warmup: float,
    verify: bool,
    prefix: str = "",
) -> dict[str, Any]:
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    netloc = parsed.netloc
    load = Load(users, prefix)
    conns = [await _open(host, port) for _ in range(connections)]
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds
    results = await asyncio.gather(
        *(_drive(load, c, netloc, measure_from, stop_at) for c in conns), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            load.error(f"{type(result).__name__}: {result}")
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    lat = load.latencies
    out: dict[str, Any] = {
        "connections": connections,
        "users": users,
        "seconds": seconds,
        "turns": load.requests,
        "turns_sent": load.attempts,
        "turns_per_s": load.requests / seconds,
        "p50_ms": _percentile(lat, 50) * 1000,
        "p90_ms": _percentile(lat, 90) * 1000,
        "p99_ms": _percentile(lat, 99) * 1000,
        "max_ms": max(lat, default=0.0) * 1000,
        "errors": load.errors,
        "error_samples": load.error_samples,
    }
    if verify:
        out.update(await _verify(load, host, port, netloc))
    return out


def _runner() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agenthost_bench.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--prefix", default="", help="prefix of the user ids (default none)")
    args = parser.parse_args(argv)
    result = _runner()(
        run(
            args.url,
            connections=args.connections,
            users=args.users,
            seconds=args.seconds,
            warmup=args.warmup,
            verify=not args.no_verify,
            prefix=args.prefix,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
