"""The app ``agenthost serve`` would run, served in this process on a loopback socket.

:class:`InProcessServer` takes the same flags as :class:`support.serve.Server` and
builds its settings with the ``serve`` command's own parser, then runs
``create_app(settings)`` on uvicorn in a thread: real TCP (streaming, keep-alive,
a client that goes away), the app's lifespan, no process to spawn. ``logs()`` is what
the ``agenthost`` and ``uvicorn`` loggers wrote while it ran, as the JSON lines a real
server writes to stderr.

Keep :class:`~support.serve.Server` for what needs a process of its own: ``--workers``,
signals, restarts, several processes on one store, the ``serve`` command itself.
"""

from __future__ import annotations

import argparse
import io
import logging
import socket
import threading
import time
from pathlib import Path

import uvicorn

from agenthost.commands import serve
from agenthost.server import create_app
from agenthost.server.logs import JsonFormatter
from agenthost.server.requestid import RequestIdFilter
from agenthost.settings import Settings
from support.serve import API_KEYS, READY_TIMEOUT

LOGGERS = ("agenthost", "uvicorn.error")


def settings_of(
    args: list[str], *, keyed: bool = False, secrets: dict[str, str] | None = None
) -> Settings:
    """The settings ``agenthost serve ARGS`` would run with (``keyed``: with
    :data:`~support.serve.API_KEYS`, and ``secrets`` such as ``jwt_secret``, as real servers
    get them from the environment)."""
    parser = argparse.ArgumentParser()
    serve.configure(parser)
    overrides = serve.overrides(parser.parse_args(args))
    if keyed:
        overrides["api_keys"] = API_KEYS
    overrides.update(secrets or {})
    settings = Settings.load(overrides)
    settings.check()
    return settings


class InProcessServer:
    """``with InProcessServer(args) as server:`` serves on ``server.url`` until the block ends."""

    def __init__(
        self,
        args: list[str],
        *,
        keyed: bool = False,
        agent: str | None = None,
        secrets: dict[str, str] | None = None,
    ) -> None:
        self.args = [*args, "--agent", agent] if agent else list(args)
        self.settings = settings_of(self.args, keyed=keyed, secrets=secrets)
        self.port = 0
        self._log = io.StringIO()
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._handler: logging.Handler | None = None
        self._levels: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self._log.getvalue()

    def start(self) -> InProcessServer:
        self._capture_logs()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))  # the same port again after a stop()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.settings),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._uvicorn = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"in-process server did not start:\n{self.logs()}")
            time.sleep(0.01)  # polling uvicorn's started flag, not synchronisation
        sock.close()  # uvicorn listens on its own duplicate of it
        return self

    def stop(self) -> None:
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise RuntimeError("in-process server did not stop in 30 s")
        self._uvicorn = self._thread = None
        self._release_logs()

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _capture_logs(self) -> None:
        handler = logging.StreamHandler(self._log)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        handler.setLevel(self.settings.log_level.upper())
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(min(logger.getEffectiveLevel(), handler.level))
            logger.addHandler(handler)
        self._handler = handler

    def _release_logs(self) -> None:
        if self._handler is None:
            return
        for name, level in self._levels.items():
            logging.getLogger(name).removeHandler(self._handler)
            logging.getLogger(name).setLevel(level)
        self._handler = None


def sqlite_in_process(
    directory: Path, agent: str, *args: str, keyed: bool = False
) -> InProcessServer:
    """:func:`support.serve.sqlite_server`'s twin, in this process (not started: use it as a
    context manager): ``agent`` on a SQLite store in ``directory``; ``keyed``: api-keys auth
    with :data:`~support.serve.API_KEYS`, else no auth on loopback."""
    flags = ["--store", f"sqlite:///{directory / 'agenthost.db'}"]
    if keyed:
        flags += ["--auth", "api-keys"]
    return InProcessServer([*flags, *args], keyed=keyed, agent=agent)
