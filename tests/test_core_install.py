"""``pip install agenthost``, the core alone, in a fresh virtual environment (no system site
packages, so nothing of the development install leaks in): it pulls no extra, the README's
Python quick start runs, and what needs an extra says which one to install.

The install goes through pip and the machine's package index like a user's would (pip's
cache keeps it to seconds after the first run); the source is a copy of this checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXTRAS_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "prometheus_client",
    "jwt",
    "asyncpg",
    "redis",
    "a2a",
    "openai",
    "anthropic",
    "mcp",
    "opentelemetry",
    "pytest",
)


class Venv:
    def __init__(self, path: Path, workdir: Path) -> None:
        self.path = path
        self.workdir = workdir

    def run(
        self, program: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env = {k: v for k, v in env.items() if not k.startswith("AGENTHOST_")}
        return subprocess.run(
            [str(self.path / "bin" / program), *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("python", *args)


def copy_source(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "src", target / "src", ignore=ignore)
    return target


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    tmp = tmp_path_factory.mktemp("core-install")
    source = copy_source(tmp / "source")
    venv = Venv(tmp / "venv", tmp)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv.path)], check=True)
    # This interpreter's pip installs into the new environment (``--python``): no pip there.
    install = [sys.executable, "-m", "pip", "--python", str(venv.path / "bin" / "python")]
    install += ["install", "--quiet", "--disable-pip-version-check", str(source)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def readme_quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start (Python)", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README lost its Python quick start"
    return match.group(1)


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    return stderr


def test_the_core_pulls_in_no_extra(core: Venv) -> None:
    probe = "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if u.find_spec(m)])"
    done = core.python("-c", probe, *EXTRAS_ONLY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_readme_quick_start_runs(core: Venv) -> None:
    script = core.workdir / "quick_start.py"
    script.write_text(readme_quick_start())
    done = core.python(str(script))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Your name is Alice."
    assert "'type': 'done'" in lines[-1] and "'session_id': 's2'" in lines[-1]
    assert not any("Bob" in line for line in lines[1:])  # Bob's new session does not know
    assert (core.workdir / "agenthost.db").is_file()


def test_the_demo_runs_in_process(core: Venv) -> None:
    done = core.run("agenthost", "demo")
    assert done.returncode == 0, done.stderr
    assert "sessions are isolated" in done.stdout


def test_chat_one_shot_in_process(core: Venv) -> None:
    """``agenthost chat`` on the core alone: a message in, the reply out, kept in the store."""
    store = ["--store", f"sqlite:///{core.workdir / 'chat.db'}"]
    told = core.run("agenthost", "chat", "--user", "alice", *store, "My name is Alice")
    assert (told.returncode, told.stdout, told.stderr) == (0, "Nice to meet you, Alice!\n", "")
    asked = core.run("agenthost", "chat", "--user", "alice", *store, "What is my name?")
    assert (asked.returncode, asked.stdout) == (0, "Your name is Alice.\n"), asked.stderr
    other = core.run("agenthost", "chat", "--user", "bob", *store, "What is my name?")
    assert other.stdout == "I don't know your name yet.\n", other.stderr


def test_serve_without_the_server_extra_says_which_to_install(core: Venv) -> None:
    done = core.run("agenthost", "serve", "--port", "9")
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("agenthost serve: ")
    assert 'pip install "agenthost[server]"' in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["serve"], "server"),
        (["serve", "--store", "postgresql://app@db/agenthost"], "server"),
        (["migrate", "--store", "postgresql://app@db/agenthost"], "postgres"),
        (["demo", "--url", "http://127.0.0.1:9"], "client"),
    ],
)
def test_what_needs_an_extra_names_it(core: Venv, command: Sequence[str], extra: str) -> None:
    done = core.run("agenthost", *command)
    assert done.returncode != 0
    assert f'pip install "agenthost[{extra}]"' in one_line(done.stderr)
