"""The web page and the API docs in real headless Chromium, against a real server.

The machine has no internet: /docs and /redoc rendering here shows they need no CDN.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from agenthost.keys import id_to_header
from support.serve import Server, uid

WAIT = 20.0


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def bubbles(browser: webdriver.Chrome, kind: str) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, f"#log .msg.{kind}")]


def say(browser: webdriver.Chrome, text: str, expected: str) -> None:
    before = len(bubbles(browser, "assistant"))
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "#form button").click()
    WebDriverWait(browser, WAIT).until(lambda b: len(bubbles(b, "assistant")) > before)
    assert bubbles(browser, "assistant")[-1] == expected
    assert bubbles(browser, "error") == []


def fill(browser: webdriver.Chrome, field: str, value: str) -> None:
    element = browser.find_element(By.ID, field)
    element.clear()
    element.send_keys(value)


def test_the_page_works_with_non_ascii_ids_and_slashes(
    browser: webdriver.Chrome, open_server: Server
) -> None:
    user, session = f"José 用户 {uid()}", "team/alpha %"
    browser.get(open_server.url + "/")
    fill(browser, "user", user)
    fill(browser, "session", session)
    say(browser, "My name is José", "Nice to meet you, José!")
    say(browser, "What is my name?", "Your name is José.")
    browser.find_element(By.ID, "load").click()  # GET .../sessions/{id}/messages, id header
    WebDriverWait(browser, WAIT).until(lambda b: len(bubbles(b, "assistant")) == 2)
    assert bubbles(browser, "user") == ["My name is José", "What is my name?"]
    # the server stored them under exactly these ids
    stored = httpx.get(
        f"{open_server.url}/v1/sessions/{quote(session, safe='')}",
        headers={"X-User-Id": id_to_header(user)},
    )
    assert (stored.json()["user_id"], stored.json()["message_count"]) == (user, 4)


@pytest.mark.parametrize(
    ("path", "selector"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
)
def test_the_api_docs_render_without_internet(
    browser: webdriver.Chrome, open_server: Server, path: str, selector: str
) -> None:
    browser.get(open_server.url + path)
    WebDriverWait(browser, WAIT).until(
        lambda b: any("agenthost" in e.text for e in b.find_elements(By.CSS_SELECTOR, selector))
    )
    assert "/v1/chat" in browser.find_element(By.TAG_NAME, "body").text
