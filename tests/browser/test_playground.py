"""The playground in a real browser, against the served app (auth none)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from selenium.webdriver.common.keys import Keys

from support.agents import AGENT
from support.browser import Console
from support.inprocess import InProcessServer, sqlite_in_process
from support.serve import uid


def open_as(console: Console, user: str) -> None:
    console.open("/")
    pane = console.pane(0)
    console.wait_loaded(pane)
    console.set_user(pane, user)


def test_a_reply_streams_in_while_the_turn_runs_and_stop_marks_it_interrupted(
    console: Console,
) -> None:
    open_as(console, uid("ann"))
    pane = console.pane(0)
    console.send(pane, "slow: think about it")  # streams "thinking..." then waits a minute
    turn = console.wait(lambda: console.turns(pane)[0], "the turn appears")
    console.wait(lambda: "thinking..." in console.reply(turn), "the first tokens")
    # the tokens are on screen while the turn still runs: busy shown, Send disabled
    assert pane.get_attribute("aria-busy") == "true"
    assert not console.find(".send", pane).is_enabled()
    assert console.find(".busy", pane).is_displayed()
    assert not turn.get_attribute("data-status")

    console.find(".message", pane).send_keys(Keys.ESCAPE)  # Esc stops the turn
    console.wait_turn(pane, 1, "interrupted")
    assert "interrupted" in console.text(".badge.interrupted", turn)

    reply_turn = console.chat(pane, "My name is Ann")
    assert console.reply(reply_turn) == "Nice to meet you, Ann!"
    assert "1 model call" in console.text(".usage", reply_turn)
    assert console.find(".send", pane).is_enabled()


def test_two_panes_are_two_users_sending_at_once_and_each_recalls_only_their_name(
    console: Console,
) -> None:
    alice, bob = uid("alice"), uid("bob")
    open_as(console, alice)
    left, right = console.split()
    console.set_user(right, bob)

    console.send(left, "My name is Alice")
    console.send(right, "My name is Bob")  # while Alice's turn may still run
    console.wait_turn(left, 1)
    console.wait_turn(right, 1)
    console.send(left, "What is my name?")
    console.send(right, "What is my name?")
    asked_left = console.wait_turn(left, 2)
    asked_right = console.wait_turn(right, 2)

    assert console.reply(asked_left) == "Your name is Alice."
    assert console.reply(asked_right) == "Your name is Bob."
    assert "Bob" not in console.find(".log", left).text
    assert "Alice" not in console.find(".log", right).text


def test_a_tool_call_and_its_result_show_inline_and_collapse(console: Console) -> None:
    open_as(console, uid("tea"))
    pane = console.pane(0)
    turn = console.chat(pane, '/tool lookup {"topic": "tea"}')

    call = console.find('details.tool[data-tool="lookup"]', turn)
    assert call.get_attribute("data-done") == "true"
    assert call.get_attribute("open") is None  # collapsed until asked
    assert "notes on tea" in console.find("summary", call).text
    console.find("summary", call).click()
    console.wait(lambda: call.get_attribute("open") is not None, "the call opens")
    assert '"topic": "tea"' in console.text(".arguments", call)
    assert console.text(".result", call) == "notes on tea"
    assert console.reply(turn) == "lookup returned: notes on tea"


def test_an_approval_answered_on_the_page_finishes_the_turn_and_the_panel_shows_state(
    console: Console, open_server: InProcessServer
) -> None:
    user = uid("payer")
    open_as(console, user)
    pane = console.pane(0)
    turn = console.chat(pane, '/tool transfer {"amount": 5, "to": "bob"}', "awaiting_approval")
    card = console.find(".approval", turn)
    assert "transfer" in card.text and '"amount": 5' in card.text
    assert not console.find(".send", pane).is_enabled()  # answer the approval first
    assert console.find(".waiting", pane).is_displayed()

    console.find(".approve", card).click()
    console.wait_turn(pane, 1, "completed")
    assert card.get_attribute("data-answered") == "approved"
    result = console.find('details.tool[data-tool="transfer"] .result', turn)
    assert result.get_attribute("textContent") == f"sent 5 to bob for {user}"  # folded away
    assert console.find(".send", pane).is_enabled()

    # the session panel: the tool's state change, a merge patch, a model config
    console.find(".toggle-details", pane).click()
    state = console.find(".state-view", pane)
    console.wait(lambda: '"transferred": 5' in state.text, "the state shows the transfer")
    patch = console.find(".state-patch", pane)
    patch.clear()
    patch.send_keys('{"topic": "billing"}')
    console.find(".apply-state", pane).click()
    console.wait(lambda: '"topic": "billing"' in state.text, "the patched state")
    assert '"transferred": 5' in state.text

    patch.clear()
    patch.send_keys("[1, 2]")
    console.find(".apply-state", pane).click()
    console.wait(lambda: "JSON object" in console.text(".state-status", pane), "a clear refusal")

    console.find('.cfg-model option[value="offline"]', pane).click()
    console.find(".cfg-temperature", pane).send_keys("0.3")
    console.find(".apply-config", pane).click()
    console.wait(lambda: console.text(".config-status", pane) == "Saved.", "the config saved")
    stored = httpx.get(f"{open_server.url}/v1/sessions/default", headers={"X-User-Id": user}).json()
    assert stored["config"] == {"model": "offline", "temperature": 0.3}
    assert stored["state"] == {"transferred": 5, "topic": "billing"}

    temperature = console.find(".cfg-temperature", pane)
    temperature.clear()
    temperature.send_keys("7")
    console.find(".apply-config", pane).click()
    console.wait(lambda: "between 0.0 and 2.0" in console.text(".config-status", pane), "422")


def test_model_output_renders_as_markdown_and_never_as_html(
    console: Console, open_server: InProcessServer
) -> None:
    open_as(console, uid("md"))
    pane = console.pane(0)
    hostile = "\n".join(
        [
            '**bold** and `code` <img src=x onerror="window.__pwned = 1">',
            "<script>window.__pwned = 2</script> <b>not bold</b>",
            "[click me](javascript:window.__pwned=3) [docs](https://example.com/docs)",
            '<a href="javascript:window.__pwned=4">raw link</a>',
            '<iframe src="about:blank"></iframe>',
            "```html",
            "<script>window.__pwned = 5</script>",
            "```",
            "- one",
            "- two",
        ]
    )
    turn = console.chat(pane, hostile)  # the offline model echoes it: "You said: ..."
    reply = console.find(".msg.assistant .md", turn)

    assert console.find("strong", reply).text == "bold"
    assert console.find("p code", reply).text == "code"
    assert [li.text for li in console.finds("li", reply)] == ["one", "two"]
    assert console.find("pre code", reply).text == "<script>window.__pwned = 5</script>"
    for tag in ("img", "script", "iframe", "b"):
        assert not console.finds(f".log {tag}", pane), f"a <{tag}> element was created"
    links = console.finds("a", reply)
    assert [a.get_attribute("href") for a in links] == ["https://example.com/docs"]
    assert links[0].get_attribute("rel") == "noopener noreferrer nofollow"
    assert '<img src=x onerror="window.__pwned = 1">' in reply.text
    assert "<b>not bold</b>" in reply.text
    assert console.js("return window.__pwned") is None
    # the user's own message is plain text too
    assert console.find(".msg.user", turn).text.startswith("**bold**")
    # and the page forbids inline script outright
    page = httpx.get(open_server.url + "/")
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_sessions_newest_first_with_paging_delete_and_switching_user_clears_the_page(
    console: Console, open_server: InProcessServer
) -> None:
    user, other = uid("pager"), uid("other")
    with httpx.Client(base_url=open_server.url, headers={"X-User-Id": user}) as api:
        for n in range(22):
            api.post("/v1/sessions", json={"session_id": f"s{n:02d}"}).raise_for_status()
        api.post("/v1/chat", json={"message": "My name is Pat", "session_id": "s05"})
    open_as(console, user)
    pane = console.pane(0)

    def listed() -> list[str]:
        return [b.get_attribute("data-session-id") for b in console.finds(".sessions .open", pane)]

    assert listed()[:3] == ["s05", "s21", "s20"]  # the chat made s05 the newest
    assert len(listed()) == 20
    assert console.find(".log", pane).text.count("Nice to meet you, Pat!") == 1  # opened s05
    console.find(".older", pane).click()
    console.wait(lambda: listed() == ["s01", "s00"], "the second page")
    console.find(".newer", pane).click()
    console.wait(lambda: len(listed()) == 20, "back to the first page")

    delete = console.find('.sessions li:has([data-session-id="s20"]) .delete', pane)
    delete.click()
    assert delete.text == "Delete?"  # a second click confirms
    delete.click()
    console.wait(lambda: "s20" not in listed(), "s20 deleted")
    assert (
        httpx.get(f"{open_server.url}/v1/sessions/s20", headers={"X-User-Id": user}).status_code
        == 404
    )

    console.set_user(pane, other)  # a new user: nothing of the previous one stays on screen
    assert listed() == []
    assert "Pat" not in console.find(".log", pane).text
    assert console.find(".session-name", pane).text == "session default"


def test_a_long_unbroken_word_wraps_inside_the_conversation(console: Console) -> None:
    open_as(console, uid("wrap"))
    pane = console.pane(0)
    turn = console.chat(pane, "x" * 600)
    log = console.find(".log", pane)
    for bubble in [*console.finds(".msg", turn), log]:
        width, scroll = console.js(
            "return [arguments[0].clientWidth, arguments[0].scrollWidth]", bubble
        )
        assert scroll <= width, f"{bubble.get_attribute('class')} overflows: {scroll} > {width}"


def test_a_non_ascii_user_id_works_in_body_header_and_path(
    console: Console, open_server: InProcessServer
) -> None:
    user = f"José 用户 {uid('x')}"
    open_as(console, user)
    pane = console.pane(0)
    console.chat(pane, "My name is José")
    turn = console.chat(pane, "What is my name?")
    assert console.reply(turn) == "Your name is José."
    # the session list (X-User-Id header) and the history (path + header) see the same user
    console.wait(
        lambda: (
            [b.get_attribute("data-session-id") for b in console.finds(".sessions .open", pane)]
            == ["default"]
        ),
        "the session listed for the non-ASCII user",
    )
    console.open("/")  # reload: the user is remembered in this tab and the history comes back
    pane = console.pane(0)
    console.wait_loaded(pane)
    assert console.find(".user", pane).get_attribute("value") == user
    assert console.find(".log", pane).text.count("Your name is José.") == 1


def test_with_the_server_down_sending_shows_a_clear_error_and_keeps_the_text(
    console_factory: Callable[[InProcessServer], Console], tmp_path: Path
) -> None:
    server = sqlite_in_process(tmp_path, AGENT).start()
    try:
        console = console_factory(server)
        open_as(console, uid("down"))
        pane = console.pane(0)
    finally:
        server.stop()
    console.send(pane, "Is anyone there?")
    error = console.wait(lambda: console.find(".msg.error", pane), "an error on the page")
    assert "Cannot reach the server" in error.text
    assert console.find(".message", pane).get_attribute("value") == "Is anyone there?"
    assert console.find(".send", pane).is_enabled()
    console.wait(lambda: console.text("#conn") == "server unreachable", "the indicator")
