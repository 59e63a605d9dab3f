"""Headless Debian chromium, driven by Selenium, for the console's browser tests.

Only the system's ``chromium`` and ``chromedriver`` are used (Selenium's own driver
download is switched off with ``SE_OFFLINE``). :class:`Console` wraps a driver with
the few page operations the tests need; every wait is for a DOM condition.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WAIT_SECONDS = 15.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        return (
            "chromium and chromium-driver are not installed "
            "(apt-get install -y chromium chromium-driver; .ci/run does it)"
        )
    return None


def start_chromium(profile: Path | None = None) -> WebDriver:
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile or tempfile.mkdtemp(prefix='chromium-')}")
    options.add_argument("--window-size=1280,860")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(shutil.which("chromedriver")))
    return webdriver.Chrome(service=service, options=options)


class Console:
    """One tab of the console (a fresh tab: its own sessionStorage)."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str = "/") -> Console:
        self.driver.get(self.base_url + path)
        self.wait(lambda: self.js("return document.readyState") == "complete", "the page loads")
        return self

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], T], what: str, timeout: float = WAIT_SECONDS) -> T:
        """Wait until ``condition()`` is truthy (stale elements count as not yet)."""

        def check(_: Any) -> T | bool:
            try:
                return condition()
            except StaleElementReferenceException:
                return False

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            check, f"waited {timeout}s for: {what}"
        )

    def find(self, css: str, root: WebElement | None = None) -> WebElement:
        return (root or self.driver).find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str, root: WebElement | None = None) -> list[WebElement]:
        return (root or self.driver).find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str, root: WebElement | None = None) -> str:
        found = self.finds(css, root)
        return found[0].text if found else ""

    # ---- the playground ---------------------------------------------------------------

    def pane(self, index: int = 0) -> WebElement:
        self.wait(lambda: len(self.finds(".pane")) > index, f"pane {index}")
        return self.finds(".pane")[index]

    def split(self) -> tuple[WebElement, WebElement]:
        self.find("#split").click()
        self.wait(lambda: len(self.finds(".pane")) == 2, "two panes")
        return self.pane(0), self.pane(1)

    def set_user(self, pane: WebElement, user: str) -> None:
        """Type a user id and commit it; wait until the pane has loaded that user's session."""
        field = self.find(".user", pane)
        self.js("arguments[0].value = ''", field)
        field.send_keys(user, "\n")
        self.wait_loaded(pane)

    def wait_loaded(self, pane: WebElement) -> None:
        self.wait(lambda: pane.get_attribute("data-loaded"), "the session's history is shown")

    def type_message(self, pane: WebElement, text: str) -> None:
        box = self.find(".message", pane)
        if "\n" in text:  # Enter would send: put multi-line text in directly
            self.js(
                "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                box,
                text,
            )
        else:
            box.send_keys(text)

    def send(self, pane: WebElement, text: str) -> None:
        """Type and send without waiting for the reply."""
        self.type_message(pane, text)
        self.find(".send", pane).click()

    def turns(self, pane: WebElement) -> list[WebElement]:
        return self.finds(".log .turn", pane)

    def finished_turns(self, pane: WebElement) -> list[WebElement]:
        return [t for t in self.turns(pane) if t.get_attribute("data-status")]

    def wait_turn(self, pane: WebElement, count: int, status: str = "completed") -> WebElement:
        """Wait until the pane's ``count``-th turn has ``status`` and the pane is idle."""
        self.wait(
            lambda: (
                len(self.turns(pane)) >= count
                and self.turns(pane)[count - 1].get_attribute("data-status") == status
                and pane.get_attribute("aria-busy") == "false"
            ),
            f"turn {count} {status}",
        )
        return self.turns(pane)[count - 1]

    def chat(self, pane: WebElement, text: str, status: str = "completed") -> WebElement:
        """Send and wait for the turn to finish; returns the turn element."""
        count = len(self.turns(pane)) + 1
        self.send(pane, text)
        return self.wait_turn(pane, count, status)

    def reply(self, turn: WebElement) -> str:
        # textContent, not .text: Selenium's .text is empty for an element scrolled out of
        # a pane's view, which depends on the window, not on what the page rendered
        texts = (m.get_attribute("textContent") or "" for m in self.finds(".msg.assistant", turn))
        return "\n".join(t.strip() for t in texts)

    # ---- artefacts -------------------------------------------------------------------

    def save_artifacts(self, name: str) -> Path:
        """A screenshot, the page's HTML and its console log, for a failed test."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w-]+", "_", name).strip("_")
        try:
            self.driver.save_screenshot(str(ARTIFACTS / f"{stem}.png"))
            (ARTIFACTS / f"{stem}.html").write_text(self.driver.page_source)
            logs = self.driver.get_log("browser")
            (ARTIFACTS / f"{stem}.log").write_text("\n".join(str(entry) for entry in logs))
        except WebDriverException as exc:
            (ARTIFACTS / f"{stem}.log").write_text(f"could not save artefacts: {exc}")
        return ARTIFACTS / f"{stem}.png"
