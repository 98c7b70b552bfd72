"""examples/flask_chat in Chromium against what a logged-in user can publish over the socket URL.

The token route hands every user a socket URL; over it they can publish any
JSON: a forged ``sender``, a ``text`` that is not a string, ``data: null``,
markup, ``__proto__`` keys. The page must keep loading, show nothing a
browser wrote as a verified name, and run nothing it was sent.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from typing import Any, Dict, Iterator, List, Tuple

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")

import requests  # noqa: E402
import websocket  # noqa: E402
from test_flask_chat_browser import enter, load_example  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)",
)
KEY = "k_hostile_chat_s3cr3t"
DEADLINE_MS = 10_000

HOSTILE: List[Any] = [
    {"text": "I am Alice", "sender": {"id": "alice", "name": "Alice"}},
    {"text": {"toString": 1}},
    None,
    {
        "text": '<img src=x onerror="window.pwned=1">',
        "sender": {"id": "<b>x</b>", "name": "<script>window.pwned=2</script>"},
        "__proto__": {"polluted": 1},
        "constructor": {"prototype": {"polluted": 1}},
    },
    {"text": "no sender at all", "sender": "Alice"},
]


@pytest.fixture
def site() -> Iterator[Tuple[Any, str]]:
    srv = server_mod.LocalServer(keys=[KEY], provision=True).start()
    example = load_example()
    app = example.create_app(
        {"COHRT_KEY": KEY, "COHRT_BASE_URL": srv.base_url, "SECRET_KEY": "h" * 32}
    )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="hostile-chat", daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(5)
        example.cohrt.close(app)
        srv.close()


def http_login(url: str, name: str) -> Tuple[requests.Session, Dict[str, str]]:
    """Log in to the example as a script would; the headers carry the CSRF token."""
    s = requests.Session()

    def token() -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', s.get(f"{url}/", timeout=5).text)
        return found.group(1) if found else ""

    r = s.post(f"{url}/login", data={"name": name, "csrf": token()}, timeout=5)
    assert r.status_code == 200, r.text[:300]
    return s, {"X-CSRF-Token": token()}


def publish_over_socket(socket_url: str, items: List[Any]) -> None:
    ws = websocket.create_connection(socket_url, timeout=5)
    try:
        for _ in range(2):
            ws.recv()  # connected, subscribed
        for data in items:
            ws.send(json.dumps({"action": "publish", "event": "message", "data": data}))
            while json.loads(ws.recv()).get("action") != "published":
                pass  # our own broadcast may come first
    finally:
        ws.close()


def shown(page: Any) -> List[List[str]]:
    return page.evaluate(
        "[...document.querySelectorAll('#messages li')].map((li) =>"
        " [...li.children].map((el) => el.textContent))"
    )


def test_what_a_user_publishes_over_the_socket_cannot_break_or_fool_the_page(
    site: Tuple[Any, str],
) -> None:
    _, url = site
    mallory, headers = http_login(url, "Mallory")
    token = mallory.post(
        f"{url}/realtime/token", json={"channel": "room:lobby"}, headers=headers, timeout=5
    ).json()
    # Persisted before Bob comes: his page loads them as scrollback.
    publish_over_socket(token["url"], HOSTILE)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            bob = enter(browser, url, "Bob")  # ready: the scrollback did not break the page
            errors: List[str] = []
            bob.on("pageerror", lambda e: errors.append(str(e)))
            bob.wait_for_function(
                f"document.querySelectorAll('#messages li').length === {len(HOSTILE)}",
                timeout=DEADLINE_MS,
            )
            expected = [
                ["~Alice", "I am Alice"],  # marked as the message's claim
                ["~?", "(a message this page cannot show)"],
                ["~?", "(a message this page cannot show)"],
                ["~<script>window.pwned=2</script>", '<img src=x onerror="window.pwned=1">'],
                ["~?", "no sender at all"],
            ]
            assert shown(bob) == expected
            claim = bob.evaluate("document.querySelector('#messages li .who').title")
            assert "not verified" in claim

            # The same again, live: the page stays up and renders them the same way.
            publish_over_socket(token["url"], HOSTILE)
            r = mallory.post(
                f"{url}/realtime/publish",
                json={"channel": "room:lobby", "data": {"text": "via the route"}},
                headers=headers,
                timeout=5,
            )
            assert r.status_code == 200
            bob.wait_for_function(
                "window.chatLog.some((m) => m.text === 'via the route')", timeout=DEADLINE_MS
            )
            assert shown(bob) == [*expected, *expected, ["~Mallory", "via the route"]]
            assert bob.evaluate("window.chatLog.at(-1).sender") == {
                "id": "mallory",
                "name": "Mallory",
            }
            # Nothing ran, nothing was polluted, no markup was made.
            assert bob.evaluate("window.pwned === undefined && ({}).polluted === undefined")
            made = bob.evaluate("document.querySelectorAll('#messages img, #messages b').length")
            assert made == 0
            assert errors == []
        finally:
            browser.close()
