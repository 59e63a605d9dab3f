"""FileLockCoordinator: per-session locks for worker processes sharing one SQLite file.

Each session maps to one byte of a lock file next to the database (the byte's
offset is a 40-bit hash of the key) and a turn holds an ``fcntl`` write lock on
that byte. Attempts never block (``LOCK_NB``, then a capped backoff), so the
event loop keeps serving other sessions while one waits. The kernel drops a
process's locks when it dies, so a crashed worker never blocks a session.

POSIX record locks belong to the process, not to the task: two sessions of one
process that hash to the same byte share one kernel lock, counted here, and
the byte is unlocked when the last of them is done. (The Host's per-key lock
already keeps two turns of one session in one process apart.)
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agenthost.coordination.base import DEFAULT_WAIT_TIMEOUT, wait_for_turn
from agenthost.errors import StoreUnavailable
from agenthost.keys import SessionKey

if TYPE_CHECKING:
    from agenthost.locks import LeaseFolding
    from agenthost.stores.base import SessionStore

RANGE_BITS = 40


def lock_offset(key: SessionKey) -> int:
    digest = hashlib.blake2b(
        f"{key.tenant_id}\x1f{key.user_id}\x1f{key.session_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> (64 - RANGE_BITS)


class FileLockCoordinator:
    shared = True

    def __init__(self, path: str | Path, *, wait_timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        self.path = str(path)
        self.wait_timeout = wait_timeout
        self._fd: int | None = None
        self._held: dict[int, int] = {}  # offset -> sessions of this process holding it

    def __repr__(self) -> str:
        return f"FileLockCoordinator({self.path!r})"

    def fold(self, store: SessionStore) -> LeaseFolding | None:
        return None  # the kernel keeps these locks, not the store

    def _file(self) -> int:
        if self._fd is None:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open lock file {self.path}: {exc}") from exc
        return self._fd

    async def _try_lock(self, offset: int) -> bool:
        if offset in self._held:
            return True
        try:
            fcntl.lockf(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise StoreUnavailable(f"cannot lock {self.path}: {exc}") from exc
        return True

    @asynccontextmanager
    async def hold(self, key: SessionKey, *, wait: bool) -> AsyncIterator[None]:
        offset = lock_offset(key)
        await wait_for_turn(
            key,
            lambda: self._try_lock(offset),
            wait=wait,
            wait_timeout=self.wait_timeout,
            where="another worker process",
        )
        self._held[offset] = self._held.get(offset, 0) + 1
        try:
            yield
        finally:
            remaining = self._held[offset] - 1
            if remaining:
                self._held[offset] = remaining
            else:
                del self._held[offset]
                if self._fd is not None:
                    fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)

    async def ping(self) -> None:
        self._file()

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        self._held.clear()
        if fd is not None:
            os.close(fd)  # releases every lock this process still holds on the file
