"""``agenthost serve`` as a new user starts it: clear one-line failures, then a working server.

Each failing start is a real process; they run side by side to keep the suite short.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agenthost.cli import main
from support.serve import READY_TIMEOUT, free_port, serve_command, serve_environment


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        serve_command(free_port(), "--store", "memory://", *args),
        env=serve_environment(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def own_logging() -> Iterator[None]:
    """``serve`` configures the process's loggers: put them back afterwards."""
    names = ("agenthost", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: logging.getLogger(n) for n in names}
    state = {n: (lg.handlers[:], lg.propagate, lg.level, lg.disabled) for n, lg in saved.items()}
    yield
    for name, logger in saved.items():
        logger.handlers[:], logger.propagate, logger.level, logger.disabled = state[name]


def test_every_start_failure_is_one_line_naming_the_setting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    own_logging: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    busy = socket.create_server(("127.0.0.1", 0))
    down = free_port()  # nothing listens there
    store = "change --store (AGENTHOST_STORE)"
    cases: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {
        # flags -> (exit status, what the line says)
        ("--port", "99999"): (2, ("port: input should be less than or equal to 65535", "--port")),
        ("--port", str(busy.getsockname()[1])): (
            2,
            ("address already in use", "choose another --port (AGENTHOST_PORT)"),
        ),
        ("--store", f"sqlite:///{tmp_path}"): (1, ("cannot open the store at sqlite:///", store)),
        ("--store", f"postgresql://postgres:pw@127.0.0.1:{down}/test"): (
            1,
            (f"the store at postgresql://postgres:***@127.0.0.1:{down}/test", store),
        ),
        ("--store", f"redis://127.0.0.1:{down}/0"): (1, ("the store at redis://", store)),
        ("--coordination", f"redis://127.0.0.1:{down}/0"): (
            1,
            ("cannot open the lock service", "change --coordination (AGENTHOST_COORDINATION)"),
        ),
        ("--store", "sqlite:///x.db?durability=fullish"): (
            2,
            ("store URL", "durability takes 'normal' or 'full'"),
        ),
        ("--store", "sqlite:///x.db?durabilty=full"): (2, ("did you mean 'durability'?",)),
        ("--agent", "no_such_module:agent"): (2, ("cannot import agent 'no_such_module:agent'",)),
    }
    try:
        for flags, (status, says) in cases.items():
            assert main(["serve", "--port", str(free_port()), "--store", "memory://", *flags]) == (
                status
            ), flags
            out, err = capsys.readouterr()
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("agenthost serve: "), (flags, err)
            assert all(part in lines[0] for part in says), (flags, err)
            assert ":pw@" not in err and "Traceback" not in err
            assert out == ""
    finally:
        busy.close()


def test_a_real_process_prints_only_that_line_and_debug_adds_the_traceback(
    tmp_path: Path,
) -> None:
    plain = start("--store", f"sqlite:///{tmp_path}", cwd=tmp_path)
    debug = start("--store", f"sqlite:///{tmp_path}", "--log-level", "debug", cwd=tmp_path)
    _, err = plain.communicate(timeout=60)
    assert plain.returncode == 1
    assert err.startswith("agenthost serve: cannot open the store at sqlite:///")
    assert len(err.strip().splitlines()) == 1
    _, err = debug.communicate(timeout=60)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("agenthost serve: cannot open the store")


def test_a_started_server_says_where_to_open_it_and_serves_an_agent_from_the_cwd(
    tmp_path: Path,
) -> None:
    """``--agent myagent:agent`` finds ./myagent.py without PYTHONPATH (as uvicorn does)."""
    (tmp_path / "myagent.py").write_text(
        textwrap.dedent(
            """
            from agenthost import Agent, FunctionModel

            agent = Agent(name="mine", model=FunctionModel(lambda request: "from myagent"))
            """
        )
    )
    port = free_port()
    environment = serve_environment()
    environment.pop("PYTHONPATH")
    process = subprocess.Popen(
        [*serve_command(port, "--store", "memory://", "--agent", "myagent:agent")],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        hint = process.stdout.readline().strip()
        assert hint == (
            f"agenthost: open {url}/ for the chat page, {url}/docs for the API (Ctrl-C stops)"
        )
        wait_ready(url, process)
        assert httpx.head(url + "/healthz").status_code == 200
        assert httpx.head(url + "/readyz").status_code == 200
        reply = httpx.post(url + "/v1/chat", json={"message": "hi"}, headers={"X-User-Id": "u"})
        assert reply.json()["reply"] == "from myagent"
    finally:
        process.terminate()
        process.communicate(timeout=15)


def wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling for readiness, not synchronisation
    pytest.fail("server not ready in time")
