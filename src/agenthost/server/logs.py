"""Structured logs: one JSON object per line, extra fields under ``extra={"fields": {...}}``.

A line logged while an HTTP request is served carries its ``request_id``
(set by :class:`agenthost.server.requestid.RequestIdFilter` on the handler).

Every turn logs a line, so writing one is kept cheap: orjson formats it, and on the
event loop lines below ``WARNING`` are flushed once per pass of the loop (one write
for all the turns that finished in it) rather than one system call each; warnings,
errors and lines logged outside the loop are flushed at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from typing import IO, Any

import orjson

from agenthost.server.requestid import RequestIdFilter


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, on an event loop, flushes once per pass of the loop."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._flush_due = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.flush()  # with whatever waits for the loop's flush
            elif not self._flush_due:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    self.flush()
                    return
                self._flush_due = True
                loop.call_soon(self._flush_soon)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _flush_soon(self) -> None:
        self._flush_due = False
        self.flush()


class _Lines(io.TextIOWrapper):
    """A text layer that never closes the process's stream under it (only flushes)."""

    def close(self) -> None:
        if not self.buffer.closed:
            self.flush()


def _unbuffered_lines(stream: IO[str]) -> IO[str]:
    """``stream`` without flushing at each newline (stderr flushes every line by default):
    a text layer over the same buffered file, so its lines and other writes to the stream
    keep their order once flushed. Streams without a binary buffer are used as they are."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None or not getattr(stream, "line_buffering", False):
        return stream
    return _Lines(buffer, encoding="utf-8", errors="replace", write_through=True)


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send ``agenthost`` and ``uvicorn`` logs to stderr (or ``stream``) as JSON lines."""
    logging.logMultiprocessing = False  # fields the JSON lines do not carry: not computed
    logging.logThreads = False
    handler = LineHandler(_unbuffered_lines(stream if stream is not None else sys.stderr))
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    for name in ("agenthost", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True
