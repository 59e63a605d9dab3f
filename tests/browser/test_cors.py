"""CORS in a real browser: a page served from a second origin calls the API of the app
``agenthost serve --cors-origins ...`` runs (served in this process): preflights, a streamed
turn read as it arrives, the exposed request id, a readable 401; and a page on an origin not
listed is refused by the browser before the API runs anything."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from support.agents import AGENT
from support.inprocess import InProcessServer, sqlite_in_process
from support.serve import KEYS, bearer, uid

PAGE = b"<!doctype html><meta charset='utf-8'><title>another web app</title>"

# Runs in the page (execute_async_script): the calls a web app makes, with their results.
CALLS = """
const [api, key, session, done] = arguments;
async function call(path, init) {
  try {
    const response = await fetch(api + path, init);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {  // read the body as it arrives, as a page showing a streamed reply does
      const {done, value} = await reader.read();
      if (done) break;
      text += decoder.decode(value, {stream: true});
    }
    return {status: response.status, request_id: response.headers.get("X-Request-Id"),
            type: response.headers.get("Content-Type"), text};
  } catch (error) {
    return {failed: String(error)};
  }
}
(async () => {
  const headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key,
                   "X-Request-Id": "from-the-page", "Accept": "text/event-stream"};
  const body = JSON.stringify({message: "My name is Ada", session_id: session, stream: true});
  const streamed = await call("/v1/chat", {method: "POST", headers, body});
  const history = await call("/v1/sessions/" + session + "/messages",
                             {headers: {"Authorization": "Bearer " + key}});
  const refused = await call("/v1/sessions", {headers: {"Authorization": "Bearer wrong"}});
  done({streamed, history, refused});
})();
"""


class PageOrigin:
    """A plain page on a loopback port of its own: an origin for the browser to call from."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[PageOrigin, PageOrigin]]:
    """The web app's origin (allowed) and another one (not)."""
    allowed, other = PageOrigin(), PageOrigin()
    yield allowed, other
    allowed.close()
    other.close()


@pytest.fixture(scope="module")
def cors_server(
    tmp_path_factory: pytest.TempPathFactory, origins: tuple[PageOrigin, PageOrigin]
) -> Iterator[InProcessServer]:
    tmp = tmp_path_factory.mktemp("cors-browser")
    args = ["--cors-origins", origins[0].url]
    with sqlite_in_process(tmp, AGENT, *args, keyed=True) as server:
        yield server


def run_calls(chromium: WebDriver, page: PageOrigin, server: InProcessServer, session: str) -> Any:
    chromium.switch_to.new_window("tab")
    try:
        chromium.get(page.url + "/")
        chromium.set_script_timeout(30)
        return chromium.execute_async_script(CALLS, server.url, KEYS["alice"], session)
    finally:
        chromium.close()
        chromium.switch_to.window(chromium.window_handles[0])


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_a_page_on_an_allowed_origin_calls_the_api(
    chromium: WebDriver, origins: tuple[PageOrigin, PageOrigin], cors_server: InProcessServer
) -> None:
    session = uid("browser")
    report = run_calls(chromium, origins[0], cors_server, session)
    streamed = report["streamed"]
    assert streamed.get("status") == 200, report
    assert streamed["type"].startswith("text/event-stream")
    assert streamed["request_id"] == "from-the-page"  # an exposed header the script can read
    events = sse_events(streamed["text"])
    assert events[-1][0] == "done"
    reply = "".join(data.get("text", "") for kind, data in events if kind == "delta")
    assert reply == "Nice to meet you, Ada!"
    history = json.loads(report["history"]["text"])
    assert [m["content"] for m in history["messages"]][-1] == "Nice to meet you, Ada!"
    refused = report["refused"]
    assert refused["status"] == 401  # the page can read why it was refused
    assert json.loads(refused["text"])["error"]["request_id"] == refused["request_id"]


def test_a_page_on_another_origin_is_refused_before_the_api_runs(
    chromium: WebDriver, origins: tuple[PageOrigin, PageOrigin], cors_server: InProcessServer
) -> None:
    session = uid("browser")
    report = run_calls(chromium, origins[1], cors_server, session)
    assert set(report["streamed"]) == {"failed"}, report  # the browser refused the call
    assert set(report["refused"]) == {"failed"}
    # The preflight failed, so the POST was never sent: the session does not exist.
    missing = httpx.get(f"{cors_server.url}/v1/sessions/{session}", headers=bearer("alice"))
    assert missing.status_code == 404
