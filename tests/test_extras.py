"""``agenthost.extras``: each optional feature, used without its extra, says what to install.

A missing package is simulated the way Python itself spells "not importable" (``None`` in
``sys.modules``), with agenthost's module that imports it dropped from the cache so that
the import runs again. The fresh-venv test (``test_core_install.py``) checks the same
from a real core-only install.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from agenthost import ConfigError
from agenthost.cli import main
from agenthost.errors import MissingExtra
from agenthost.extras import MODULES, installed, require
from agenthost.models import resolve_model
from agenthost.models.providers import Providers
from agenthost.settings import Settings
from agenthost.stores import open_store

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"

Hide = Callable[..., None]


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch) -> Hide:
    def hide(*packages: str, reimport: tuple[str, ...] = ()) -> None:
        for package in packages:
            for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
                monkeypatch.delitem(sys.modules, name)
            monkeypatch.setitem(sys.modules, package, None)
        for module in reimport:
            monkeypatch.delitem(sys.modules, module, raising=False)

    return hide


def test_every_extra_of_the_table_is_declared_and_all_gathers_them() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert set(MODULES) <= set(declared)
    everything = declared["all"][0]  # "agenthost[server,client,...]"
    assert set(everything.partition("[")[2].rstrip("]").split(",")) == set(MODULES) - {"testing"}
    assert "agenthost[all,testing]" in declared["dev"]


def test_the_core_depends_on_no_extra() -> None:
    core = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    names = {spec.split(">")[0].split("[")[0].strip().lower() for spec in core}
    assert names == {"orjson", "pydantic", "pydantic-settings", "tqdm"}


def test_the_error_is_a_config_error_and_an_import_error(hide: Hide) -> None:
    hide("asyncpg", reimport=("agenthost.stores.postgres",))
    with pytest.raises(MissingExtra) as caught:
        open_store("postgresql://app@db/agenthost")
    error = caught.value
    assert isinstance(error, ConfigError) and isinstance(error, ImportError)
    assert error.extra == "postgres" and error.code == "missing_extra"
    assert error.message == (
        'PostgreSQL support (store, coordination) needs the "postgres" extra: '
        'pip install "agenthost[postgres]"'
    )


@pytest.mark.parametrize(
    ("package", "module", "use", "extra"),
    [
        ("redis", "agenthost.stores.redis", lambda: open_store("redis://cache:6379/0"), "redis"),
        (
            "openai",
            "agenthost.models.openai",
            lambda: resolve_model("openai:gpt-4o-mini"),
            "openai",
        ),
        ("httpx", "agenthost.client", lambda: __import__("agenthost.client"), "client"),
        (
            "anthropic",
            "agenthost.models.anthropic",
            lambda: __import__("agenthost.models.anthropic"),
            "anthropic",
        ),
        ("anthropic", "", lambda: Providers().check("anthropic:claude-sonnet-4-5"), "anthropic"),
        ("openai", "", lambda: Providers().check("openai:gpt-4o-mini"), "openai"),
    ],
)
def test_each_feature_names_its_extra(
    hide: Hide, package: str, module: str, use: Callable[[], object], extra: str
) -> None:
    hide(package, reimport=(module,) if module else ())
    with pytest.raises(MissingExtra, match=rf'pip install "agenthost\[{extra}\]"'):
        use()


def test_require_checks_without_importing(hide: Hide) -> None:
    assert installed("server")
    hide("prometheus_client")
    assert not installed("server")
    with pytest.raises(MissingExtra, match=r"the HTTP server needs the \"server\" extra"):
        require("server", "the HTTP server")


def test_serve_without_the_server_extra_says_so_in_one_line(
    hide: Hide, capsys: pytest.CaptureFixture[str]
) -> None:
    hide("uvicorn")
    assert main(["serve"]) == 2
    hint = 'the HTTP server needs the "server" extra: pip install "agenthost[server]"'
    assert capsys.readouterr().err == f"agenthost serve: {hint}\n"


def test_chat_url_without_the_client_extra(hide: Hide, capsys: pytest.CaptureFixture[str]) -> None:
    hide("httpx", reimport=("agenthost.client",))
    assert main(["chat", "--user", "alice", "--url", "http://127.0.0.1:9", "hi"]) != 0
    err = capsys.readouterr().err
    assert 'pip install "agenthost[client]"' in err and "Traceback" not in err


async def test_a_server_without_a2a_answers_its_routes_with_the_hint(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agenthost.server import app as server_app

    monkeypatch.setattr(server_app, "installed", lambda extra: extra != "a2a")
    app = server_app.create_app(Settings.load({"store": "memory://", "model": "offline"}))
    assert 'pip install "agenthost[a2a]"' in caplog.text  # said once, at start
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for response in (
                await client.get("/.well-known/agent-card.json"),
                await client.post("/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "x"}),
            ):
                assert response.status_code == 501
                error = response.json()["error"]
                assert error["code"] == "missing_extra"
                assert error["message"] == 'A2A needs the "a2a" extra: pip install "agenthost[a2a]"'
            assert (await client.post("/v1/chat", json={"message": "hi"})).status_code == 200
            assert "/a2a" not in (await client.get("/openapi.json")).json()["paths"]
    finally:
        await app.state.host.close()
