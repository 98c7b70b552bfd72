"""examples/flask_chat in headless Chromium: two users, presence, typing, a drop and its catch-up.

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it),
driven by Playwright through ``executable_path``: nothing downloads a browser.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")

from werkzeug.serving import make_server  # noqa: E402

import cohrt_sync  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)",
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_chat" / "app.py"
KEY = "k_browser_s3cr3t"
DEADLINE_MS = 10_000


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("flask_chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=[True, False], ids=["ids", "no-ids"])
def chat(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The example app over HTTP, on a local server with or without ids on live frames."""
    srv = server_mod.LocalServer(keys=[KEY], provision=True, live_ids=request.param).start()
    example = load_example()
    app = example.create_app(
        {"COHRT_KEY": KEY, "COHRT_BASE_URL": srv.base_url, "SECRET_KEY": "s" * 32}
    )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="flask-chat-test", daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{http.server_port}", request.param
    finally:
        http.shutdown()
        thread.join(5)
        example.cohrt.close(app)
        srv.close()


def enter(browser: Any, url: str, name: str) -> Any:
    page = browser.new_context().new_page()
    errors: List[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.fill("#name", name)
    page.click("#enter")
    try:
        page.wait_for_function("window.chatReady === true", timeout=DEADLINE_MS)
    except Exception:
        raise AssertionError(f"{name}'s page did not get ready: {errors}") from None
    return page


def log_texts(page: Any) -> List[str]:
    return [m["text"] for m in page.evaluate("window.chatLog")]


def test_two_users_chat_type_and_catch_up_after_a_drop(chat: Any) -> None:
    srv, url, live_ids = chat
    channel = "room:lobby"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            alice = enter(browser, url, "Alice")
            bob = enter(browser, url, "Bob")

            # Presence of both, on both pages.
            for page in (alice, bob):
                page.wait_for_selector('#presence li[data-id="alice"]', timeout=DEADLINE_MS)
                page.wait_for_selector('#presence li[data-id="bob"]', timeout=DEADLINE_MS)

            # A message from one is seen by the other, with the server-stamped sender.
            alice.fill("#text", "hello from alice")
            alice.press("#text", "Enter")
            bob.wait_for_function(
                "window.chatLog.some(m => m.text === 'hello from alice')", timeout=DEADLINE_MS
            )
            (hello,) = bob.evaluate("window.chatLog")
            assert hello["sender"] == {"id": "alice", "name": "Alice"}

            # Typing is seen, and never persisted.
            bob.type("#text", "hi")
            alice.wait_for_function(
                "document.getElementById('typing').textContent.includes('Bob typing')",
                timeout=DEADLINE_MS,
            )
            with cohrt_sync.Client(key=KEY, base_url=srv.base_url) as direct:
                events = [m.event for m in direct.history(channel, limit=100)]
                assert events == ["message"]

                # The server drops every socket of the room while messages go out over HTTP.
                sent = []
                for i in range(12):
                    text = f"m{i}"
                    direct.publish(channel, {"text": text, "sender": {"id": "bot", "name": "Bot"}})
                    sent.append(text)
                    if i == 3:
                        assert srv.drop_channel(channel) == 2
            expected = ["hello from alice", *sent]
            for page in (alice, bob):
                page.wait_for_function(
                    f"window.chatLog.length >= {len(expected)}"
                    " && window.chatChannel.status === 'open'",
                    timeout=DEADLINE_MS,
                )
                assert log_texts(page) == expected  # exactly once, in order
                assert page.evaluate("window.chatChannel.reconnects") >= 1
            # Live again after the catch-up: one more message arrives once.
            bob.fill("#text", "back")
            bob.press("#text", "Enter")
            alice.wait_for_function(
                "window.chatLog.some(m => m.text === 'back')", timeout=DEADLINE_MS
            )
            assert log_texts(alice) == [*expected, "back"]

            # A socket publish resolves on the server's ack; it carries no stamped sender.
            ack = alice.evaluate("window.chatChannel.publish({text: 'sock'})")
            assert ack["action"] == ack["event"] == "message"
            assert isinstance(ack["id"], int) == live_ids
            bob.wait_for_function(
                "window.chatLog.some(m => m.text === 'sock')", timeout=DEADLINE_MS
            )
            last = bob.evaluate("(m => [m.text, m.sender ?? null])(window.chatLog.at(-1))")
            assert last == ["sock", None]

            # close(): Bob's socket on the room goes, and Alice sees him leave.
            bob.evaluate("window.chatChannel.close()")
            assert bob.evaluate("window.chatChannel.status") == "closed"
            alice.wait_for_selector(
                '#presence li[data-id="bob"]', state="detached", timeout=DEADLINE_MS
            )
        finally:
            browser.close()


def test_a_refused_subscription_says_why_in_the_status() -> None:
    # One token a minute: the inbox takes it, the room's subscription gets 429.
    srv = server_mod.LocalServer(keys=[KEY], provision=True).start()
    example = load_example()
    app = example.create_app(
        {
            "COHRT_KEY": KEY,
            "COHRT_BASE_URL": srv.base_url,
            "SECRET_KEY": "s" * 32,
            "COHRT_USER_TOKEN_BUDGET": {"burst": 1, "per_minute": 1},
        }
    )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="flask-chat-429", daemon=True)
    thread.start()
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{http.server_port}")
                page.fill("#name", "Alice")
                page.click("#enter")
                page.wait_for_function(
                    "document.getElementById('status').textContent.startsWith('not connected')",
                    timeout=DEADLINE_MS,
                )
                status = page.text_content("#status")
                assert status is not None
                assert "too many connection tokens: try again in" in status, status
            finally:
                browser.close()
    finally:
        http.shutdown()
        thread.join(5)
        example.cohrt.close(app)
        srv.close()
