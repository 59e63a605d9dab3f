"""``agenthost.server.logs``: one JSON object per line, fields merged in, exceptions kept,
and ``configure_logging`` sends agenthost's and uvicorn's loggers to stderr only."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from agenthost.server.logs import JsonFormatter, configure_logging


def record(message: str, *, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("agenthost.test", logging.WARNING, __file__, 1, message, (), None)
    if exc is not None:
        made.exc_info = (type(exc), exc, exc.__traceback__)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_a_line_is_one_json_object_with_the_fields_merged_in() -> None:
    line = JsonFormatter().format(
        record("turn", fields={"user_id": "José", "tokens": 3}, request_id="req-1")
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "warning" and data["logger"] == "agenthost.test"
    assert data["message"] == "turn" and data["request_id"] == "req-1"
    assert (data["user_id"], data["tokens"]) == ("José", 3)
    assert "José" in line  # not escaped to \\u00e9
    assert set(data) >= {"ts", "time"}


def test_no_request_id_field_outside_a_request_and_odd_fields_are_ignored() -> None:
    data = json.loads(JsonFormatter().format(record("start", fields="not a dict")))
    assert "request_id" not in data and "fields" not in data


def test_an_exception_is_kept_on_the_same_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError as exc:
        line = JsonFormatter().format(record("failed", exc=exc))
    assert "\n" not in line
    assert "ValueError: broken" in json.loads(line)["exception"]


@pytest.fixture
def restored() -> Iterator[None]:
    names = ("agenthost", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level) for n in names}
    propagate = {n: logging.getLogger(n).propagate for n in names}
    disabled = logging.getLogger("uvicorn.access").disabled
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate[name]
    logging.getLogger("uvicorn.access").disabled = disabled


def test_configure_logging_writes_json_lines_to_stderr(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info")
    logging.getLogger("agenthost.server").info("serving", extra={"fields": {"agent": "a"}})
    logging.getLogger("agenthost.server").debug("hidden at info")
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("agenthost.server", "serving"),
        ("uvicorn.error", "from uvicorn"),
    ]
    assert lines[0]["agent"] == "a" and out == ""
    assert logging.getLogger("uvicorn.access").disabled


class Counted:
    """A text stream that counts its flushes (what reaches the file descriptor)."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.flushed: list[int] = []

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushed.append(len(self.written))


async def test_on_the_loop_info_lines_share_a_flush_and_a_warning_flushes_at_once() -> None:
    import asyncio

    from agenthost.server.logs import LineHandler

    stream = Counted()
    handler = LineHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    info = record("turn")
    info.levelno, info.levelname = logging.INFO, "INFO"
    for _ in range(3):
        handler.handle(info)
    assert len(stream.written) == 3 and stream.flushed == []  # waiting for the loop's pass
    handler.handle(record("careful"))  # a warning: everything written so far goes out now
    assert stream.flushed == [4]
    await asyncio.sleep(0)  # the loop's pass: its flush comes, with nothing new to add
    assert stream.flushed == [4, 4]
    handler.handle(info)
    await asyncio.sleep(0)
    assert stream.flushed == [4, 4, 5]


def test_off_the_loop_every_line_is_flushed() -> None:
    from agenthost.server.logs import LineHandler

    stream = Counted()
    handler = LineHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    info = record("line")
    info.levelno, info.levelname = logging.INFO, "INFO"
    handler.handle(info)
    handler.handle(info)
    assert stream.flushed == [1, 2]
