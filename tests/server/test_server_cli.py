"""The CLI: chat, sessions and demo, in-process and against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agenthost.cli import main
from support.agents import AGENT
from support.serve import KEYS, Server, uid


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
    keyed_server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
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


def test_demo_against_a_server(open_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--url", open_server.url]) == 0
    assert "isolated" in capsys.readouterr().out
