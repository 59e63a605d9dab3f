"""The CLI: chat, sessions and demo, in-process and against a server (served in this process;
the memory demo starts its own ``agenthost serve``)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agenthost import __version__
from agenthost.cli import main
from support.agents import AGENT
from support.inprocess import InProcessServer
from support.serve import KEYS, free_port, serve_environment, uid


def store(tmp_path: Path) -> list[str]:
    return ["--store", f"sqlite:///{tmp_path / 'cli.db'}", "--model", "offline"]


@pytest.mark.parametrize("command", ["serve", "chat", "sessions", "demo"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: agenthost {command}" in capsys.readouterr().out


def test_chat_in_process_persists_in_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--user", "alice", *store(tmp_path), "My name is Alice"]) == 0
    assert main(["chat", "--user", "bob", *store(tmp_path), "What is my name?"]) == 0
    assert main(["chat", "--user", "alice", *store(tmp_path), "What is my name?"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["Nice to meet you, Alice!", "I don't know your name yet.", "Your name is Alice."]


def test_chat_interactive_mode_with_an_approval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer = "/tool transfer " + json.dumps({"amount": 3, "to": "bo"})
    monkeypatch.setattr("sys.stdin", io.StringIO(f"My name is Al\n{transfer}\ny\n/quit\n"))
    args = ["chat", "--user", "al", "--session", "s1", *store(tmp_path)]
    assert main([*args, "--agent", AGENT]) == 0
    out = capsys.readouterr().out
    assert "Nice to meet you, Al!" in out
    assert "needs approval" in out
    assert "transfer returned: sent 3 to bo for al" in out


def test_sessions_list_show_delete_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["chat", "--user", "ann", "--session", "s1", *store(tmp_path), "My name is Ann"])
    main(["chat", "--user", "ann", "--session", "s2", *store(tmp_path), "hello"])
    capsys.readouterr()
    assert main(["sessions", "list", "--user", "ann", *store(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(s["session_id"] for s in listed) == ["s1", "s2"]
    assert main(["sessions", "show", "s1", "--user", "ann", *store(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "user: My name is Ann" in shown and "assistant: Nice to meet you, Ann!" in shown
    assert main(["sessions", "delete", "s1", "--user", "ann", *store(tmp_path)]) == 0
    assert "deleted 1 session(s)" in capsys.readouterr().out
    assert main(["sessions", "show", "s1", "--user", "ann", *store(tmp_path)]) == 1
    assert "not found" in capsys.readouterr().err


def test_chat_and_sessions_against_a_server(
    keyed_server: InProcessServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = uid("cli")
    remote = ["--url", keyed_server.url, "--api-key", KEYS["alice"]]
    assert main(["chat", "--user", "alice", "--session", session, *remote, "My name is A"]) == 0
    assert capsys.readouterr().out == "Nice to meet you, A!\n"
    monkeypatch.setenv("AGENTHOST_API_KEY", KEYS["alice"])
    url = ["--url", keyed_server.url]
    assert main(["sessions", "show", session, "--user", "alice", *url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert main(["sessions", "delete", session, "--user", "alice", *url]) == 0
    assert main(["sessions", "show", session, "--user", "alice", *url]) == 1
    assert "not found" in capsys.readouterr().err
    bad = ["--url", keyed_server.url, "--api-key", "wrong"]
    assert main(["chat", "--user", "alice", *bad, "hi"]) == 1
    assert "invalid API key" in capsys.readouterr().err


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["Alice", "|", "Bob"]
    rows = [line.partition(" |") for line in lines[2:] if " |" in line]
    left = [row[0].strip() for row in rows]
    right = [row[2].strip() for row in rows]
    assert left[0] == "you: My name is Alice" and right[0] == ""
    assert "triage: Nice to meet you, Alice!" in left
    assert "you: /handoff billing" in left and "you: /handoff support" in right
    assert "billing: Your name is Alice." in left
    assert "support: Your name is Bob." in right
    assert "isolated" in out and "handed Alice to billing" in out


def test_demo_against_a_server(
    open_server: InProcessServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--url", open_server.url]) == 0
    assert "isolated" in capsys.readouterr().out


def test_the_memory_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--memory"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("[")]
    assert [row.startswith("[ok ]") for row in rows] == [True] * 4
    assert "Your name is Alice." in rows[0] and "Your name is Alice." in rows[1]
    assert "I don't know your name yet." in rows[2] and "I don't know" in rows[3]


def test_the_memory_demo_against_a_server_it_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--memory", "--serve"]) == 0
    assert "memory is per user, per tenant" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"agenthost {__version__}\n"


@pytest.mark.parametrize(
    "command",
    [
        ["chat", "--user", "a", "hi"],
        ["chat", "--user", "a", "--session", "s"],  # interactive: fails on the first turn
        ["sessions", "list", "--user", "a"],
        ["sessions", "show", "s", "--user", "a"],
        ["demo"],
    ],
)
def test_a_server_that_is_down_is_one_line_for_every_command(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    url = f"http://127.0.0.1:{free_port()}"
    assert main([*command, "--url", url]) == 1
    err = capsys.readouterr().err.splitlines()  # the demo's progress bar comes first
    assert err[-1] == f"agenthost {command[0]}: cannot reach {url}: [Errno 111] Connection refused"
    assert not any("Traceback" in line for line in err)


def failing_provider(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A model whose provider refuses connections: every turn fails (503 on a server), at
    once (no retries: their backoff is tested in test_failover)."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AGENTHOST_MODEL_RETRIES", "0")
    return ["--model", "openai:gone"]


def test_chat_exits_non_zero_when_the_turn_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = failing_provider(monkeypatch)
    db = ["--store", f"sqlite:///{tmp_path / 'cli.db'}"]
    assert main(["chat", "--user", "a", *db, *model, "hi"]) == 1
    assert "cannot connect" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n/quit\n"))
    assert main(["chat", "--user", "a", *db, *model]) == 1
    assert main(["chat", "--user", "a", *db, "--model", "offline", "hi"]) == 0


def test_chat_against_a_server_exits_non_zero_when_the_turn_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = failing_provider(monkeypatch)
    flags = ["--store", "memory://", *model, "--model-retries", "0"]
    with InProcessServer(flags) as server:
        assert main(["chat", "--user", "a", "--url", server.url, "hi"]) == 1
        assert "model_error" in capsys.readouterr().out


def test_an_agent_module_in_the_current_directory_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_agent_here.py").write_text(
        "from agenthost import Agent, FunctionModel\n"
        "agent = Agent(name='here', model=FunctionModel(lambda request: 'from here'))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", str(tmp_path))])
    args = ["chat", "--user", "a", "--store", "memory://", "--agent", "cli_agent_here:agent", "x"]
    assert main(args) == 0
    assert capsys.readouterr().out == "from here\n"


def test_the_cli_builds_its_host_without_the_server_package(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from agenthost.cli import main\n"
        f"assert main(['chat', '--user', 'a', '--store', 'sqlite:///{tmp_path}/x.db', 'hi']) == 0\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('agenthost.server', 'fastapi')))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: hi\n"


class Terminal:
    """A child process on a pseudo-terminal, as a person at a keyboard runs it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.screen = b""

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.screen.count(text.encode()) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared in {self.screen!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                self.screen += os.read(self.master, 4096)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> int:
        """Read to the end (EIO once the child closed the terminal), then let it exit:
        a child's last close of a terminal waits while its output is unread."""
        while select.select([self.master], [], [], 60)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk
        os.close(self.master)
        return self.process.wait(timeout=60)


def test_interactive_chat_has_line_editing_and_history(tmp_path: Path) -> None:
    history = tmp_path / "history"
    env = serve_environment({"TERM": "xterm", "AGENTHOST_CHAT_HISTORY": str(history)})
    command = [sys.executable, "-m", "agenthost.cli", "chat", "--user", "u"]
    terminal = Terminal([*command, "--store", "memory://"], env)
    try:
        terminal.wait_for("you> ")
        terminal.type("helo\x1b[Dl\r")  # a typo mended with the left arrow
        terminal.wait_for("You said: hello")
        terminal.wait_for("you> ", count=2)
        terminal.type("\x1b[A\r")  # up arrow: the previous line again
        terminal.wait_for("You said: hello", count=2)
        terminal.wait_for("you> ", count=3)
        terminal.type("\x04")  # Ctrl-D
        assert terminal.close() == 0, terminal.screen
    finally:
        terminal.kill()
    assert b"^[[" not in terminal.screen  # arrow keys are keys, not printed escape codes
    assert history.read_text().splitlines()[-1] == "hello"
    # the next session starts with that history
    terminal = Terminal([*command, "--store", "memory://"], env)
    try:
        terminal.wait_for("you> ")
        terminal.type("\x1b[A\r")
        terminal.wait_for("You said: hello")
        terminal.wait_for("you> ", count=2)
        terminal.type("\x04")
        assert terminal.close() == 0, terminal.screen
    finally:
        terminal.kill()
