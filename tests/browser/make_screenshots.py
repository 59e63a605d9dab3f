"""Regenerate the README's console screenshots.

``.venv/bin/python tests/browser/make_screenshots.py``

Starts a real server (offline model, the test agent) in a temporary directory,
plays the Alice/Bob scenario side by side, and writes ``docs/console-*.png``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from support.agents import AGENT  # noqa: E402
from support.browser import Console, start_chromium  # noqa: E402
from support.serve import sqlite_server  # noqa: E402

DOCS = TESTS.parent / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, sqlite_server(Path(tmp), AGENT) as server:
        driver = start_chromium(Path(tmp) / "profile")
        try:
            driver.set_window_size(1400, 900)
            console = Console(driver, server.url).open("/")
            console.wait_loaded(console.pane(0))
            left, right = console.split()
            console.set_user(left, "alice")
            console.set_user(right, "bob")
            console.chat(left, "My name is Alice")
            console.chat(right, "My name is Bob")
            console.chat(left, "What is my name?")
            console.chat(right, "What is my name?")
            console.chat(left, '/tool lookup {"topic": "**refunds**"}')
            console.chat(right, '/tool transfer {"amount": 5, "to": "carol"}', "awaiting_approval")
            driver.save_screenshot(str(DOCS / "console-playground.png"))

            dashboard = Console(driver, server.url).open("/dashboard")
            dashboard.wait(lambda: dashboard.finds("#live tbody tr"), "live sessions listed")
            traffic(server.url, seconds=45)  # a few buckets of activity for the charts
            driver.save_screenshot(str(DOCS / "console-dashboard.png"))
        finally:
            driver.quit()
    print("wrote", *sorted(DOCS.glob("console-*.png")))


def traffic(url: str, *, seconds: float) -> None:
    """Turns from a dozen users, growing then easing off, and a couple of evictions."""
    with httpx.Client(base_url=url, timeout=30) as api:
        began = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - began) < seconds:
            user = f"user-{n % (3 + int(elapsed / 4))}"
            api.post("/v1/chat", json={"message": f"note {n}", "user_id": user})
            if n % 60 == 59:
                api.delete(f"/v1/admin/sessions/default/user-{n % 3}/default")
            n += 1
            time.sleep(0.05 + 0.2 * (elapsed / seconds))


if __name__ == "__main__":
    main()
