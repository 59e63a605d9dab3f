"""The operator dashboard in a real browser (auth none: every caller is an admin)."""

from __future__ import annotations

import httpx

from support.browser import Console
from support.inprocess import InProcessServer
from support.serve import uid


def test_the_dashboard_shows_a_live_session_and_evicts_it(
    console: Console, open_server: InProcessServer
) -> None:
    user = uid("live")
    with httpx.Client(base_url=open_server.url, timeout=30) as api:
        api.post("/v1/chat", json={"message": "hi", "user_id": user, "session_id": "s1"})
        before = api.get("/v1/admin/stats").json()["evictions"]

        console.open("/dashboard")
        row = console.wait(lambda: console.find(f'#live tr[data-user="{user}"]'), "the live row")
        assert "s1" in row.text and "idle" in row.text
        assert console.text('[data-card="process"] .value') == "up"
        assert console.text('[data-card="store & locks"] .value') == "ready"
        chart = console.find('[data-chart="turns per second"]')
        assert console.finds("path.line", chart), "the turns chart has a line"

        console.find(f'#live tr[data-user="{user}"] .evict').click()
        console.wait(lambda: not console.finds(f'#live tr[data-user="{user}"]'), "the row goes")
        assert f"Evicted {user}/s1." in console.text("#evict-status")
        console.wait(
            lambda: console.text('[data-card="evictions"] .value') == str(before + 1),
            "the evictions count",
        )
        live = api.get("/v1/admin/sessions").json()["sessions"]
        assert not any(s["user_id"] == user for s in live)


def test_the_cleanup_button_reports_what_it_did(console: Console) -> None:
    console.open("/dashboard")
    console.wait(lambda: console.finds('[data-card="live / max"]'), "the dashboard loads")
    console.find("#cleanup").click()
    console.wait(
        lambda: console.text("#cleanup-status").startswith("expired 0 idle session(s)"),
        "the cleanup result",
    )
