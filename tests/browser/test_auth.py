"""The console under --auth api-keys and --auth jwt: a credential pasted once per tab."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest

from support.agents import AGENT
from support.browser import Console
from support.inprocess import InProcessServer, sqlite_in_process
from support.serve import KEYS

SECRET = "console-test-secret-long-enough-for-hs256"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with sqlite_in_process(tmp_path_factory.mktemp("keyed"), AGENT, keyed=True) as server:
        yield server


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    tmp: Path = tmp_path_factory.mktemp("jwt")
    args = ["--store", f"sqlite:///{tmp / 'agenthost.db'}", "--auth", "jwt"]
    secrets = {"jwt_secret": SECRET}  # AGENTHOST_JWT_SECRET for a real server
    with InProcessServer(args, agent=AGENT, secrets=secrets) as server:
        yield server


def paste_credential(console: Console, credential: str) -> None:
    console.find("#credential-button").click()
    field = console.find("#credential-input")
    console.wait(field.is_displayed, "the credential dialog")
    field.send_keys(credential, "\n")
    console.wait(lambda: not field.is_displayed(), "the dialog closes")


def test_an_api_key_server_refuses_a_wrong_key_clearly_and_keeps_a_good_one_in_the_tab(
    console_factory: Callable[[InProcessServer], Console], keyed_server: InProcessServer
) -> None:
    console = console_factory(keyed_server).open("/")
    banner = console.find("#banner")
    console.wait(banner.is_displayed, "the banner asks for a credential")
    assert "This server needs an API key or a token: missing credentials" in banner.text

    paste_credential(console, "not-a-real-key")
    console.wait(lambda: "refused the credential: invalid API key" in banner.text, "refusal")
    assert banner.is_displayed()
    pane = console.pane(0)
    console.wait(lambda: "invalid API key" in console.find(".log", pane).text, "pane error")

    paste_credential(console, KEYS["alice"])
    console.wait(lambda: not banner.is_displayed(), "the banner goes away")
    console.wait_loaded(pane)
    assert console.find(".user", pane).get_attribute("value") == ""  # the key's own user
    turn = console.chat(pane, "My name is Alice")
    assert console.reply(turn) == "Nice to meet you, Alice!"
    assert KEYS["alice"] not in console.driver.current_url
    assert console.js("return sessionStorage.getItem('agenthost.credential')") == KEYS["alice"]
    assert console.text("#who") == "key …6789"

    console.open("/")  # pasted once: a reload in the same tab keeps it
    pane = console.pane(0)
    console.wait_loaded(pane)
    assert "Nice to meet you, Alice!" in console.find(".log", pane).text

    # Bob in the second pane, with his own key for that pane only
    left, right = console.split()
    console.find(".toggle-details", right).click()
    console.find(".pane-credential", right).send_keys(KEYS["bob"], "\t")
    console.wait_loaded(right)
    asked = console.chat(right, "What is my name?")
    assert console.reply(asked) == "I don't know your name yet."
    assert console.reply(console.chat(left, "What is my name?")) == "Your name is Alice."


def test_the_dashboard_refuses_a_user_key_clearly_and_works_with_an_admin_key(
    console_factory: Callable[[InProcessServer], Console], keyed_server: InProcessServer
) -> None:
    console = console_factory(keyed_server).open("/dashboard")
    paste_credential(console, KEYS["alice"])
    banner = console.find("#banner")
    console.wait(lambda: "needs an admin credential" in banner.text, "a clear refusal")
    paste_credential(console, KEYS["admin"])
    console.wait(lambda: not banner.is_displayed(), "the banner goes away")
    console.wait(lambda: console.finds('[data-card="total sessions"]'), "the session counts")


def test_a_jwt_pasted_once_names_the_user(
    console_factory: Callable[[InProcessServer], Console], jwt_server: InProcessServer
) -> None:
    claims = {"sub": "carol", "tenant": "acme", "exp": int(time.time()) + 600}
    console = console_factory(jwt_server).open("/")
    paste_credential(console, jwt.encode(claims, SECRET, algorithm="HS256"))
    assert console.text("#who") == "token: carol @ acme"
    pane = console.pane(0)
    console.wait_loaded(pane)
    console.chat(pane, "My name is Carol")
    assert console.reply(console.chat(pane, "What is my name?")) == "Your name is Carol."
