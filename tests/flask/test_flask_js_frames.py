"""cohrt-sync.js in Chromium: a frame that carries ``data`` is a message, whatever its event.

The spec makes a message's ``action`` equal to its ``event``, and any event
name is allowed, so another user can publish ``event: "published"`` or
``"join"``. Such a message must reach ``onMessage``, never settle one of our
publishes, and never change ``ch.presence``.
"""

from __future__ import annotations

import json
import shutil
import threading
from typing import Any, Iterator, Tuple

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")

import websocket  # noqa: E402
from flask_test_app import login  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)",
)
DEADLINE_MS = 10_000
PROTOCOL_NAMES = ["published", "join", "leave", "subscribed", "connected", "pong", "error"]

# Runs in the page: log in as the victim, subscribe, keep every message.
SUBSCRIBE = """async (channel) => {
  await fetch("/login?uid=victim&name=Victim", { method: "POST" });
  const { subscribe } = await import("/realtime/cohrt-sync.js");
  window.got = [];
  window.errors = [];
  window.ch = await subscribe(channel, {
    onMessage(m) { window.got.push(m); },
    onError(e) { window.errors.push(e.message); },
  });
  return [...window.ch.presence.keys()];
}"""

# Runs in the page: 40 socket publishes at once; every ack, in order.
PUBLISH_40 = """async () => {
  const acks = await Promise.all(
    Array.from({ length: 40 }, (_, n) => window.ch.publish({ from: "victim", n })));
  return acks.map((a) => a.id);
}"""


@pytest.fixture
def site(make_app: Any) -> Iterator[Tuple[Any, str]]:
    app = make_app()
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="js-frames-http", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{http.server_port}/"
    finally:
        http.shutdown()
        thread.join(5)


def test_a_message_named_like_a_protocol_action_is_only_a_message(
    site: Tuple[Any, str], channel: str
) -> None:
    app, url = site
    # A name that breaks any URL it is pasted into unencoded: the client's
    # token body, history queries and socket URL must all keep it whole.
    channel = f"{channel}&channel=other&after=99#x?%2F"
    mallory = app.test_client()
    login(mallory, "mallory", "Mallory")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(url)
            assert page.evaluate(SUBSCRIBE, channel) == ["victim"]

            # Through the publish route: each event named like a protocol frame.
            for name in PROTOCOL_NAMES:
                r = mallory.post(
                    "/realtime/publish",
                    json={"channel": channel, "event": name, "data": {"text": name}},
                )
                assert r.status_code == 200, r.json
            page.wait_for_function(
                f"window.got.length >= {len(PROTOCOL_NAMES)}", timeout=DEADLINE_MS
            )
            got = page.evaluate("window.got.map((m) => [m.event, m.data.text, m.data.sender.id])")
            assert got == [[n, n, "mallory"] for n in PROTOCOL_NAMES]
            # Presence is the server's join/leave frames only: no user "undefined".
            assert page.evaluate("[...window.ch.presence.keys()]") == ["victim"]

            # Keys that would pollute a prototype if merged: data, nothing more.
            polluting = {"__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}}
            r = mallory.post("/realtime/publish", json={"channel": channel, "data": polluting})
            assert r.status_code == 200
            page.wait_for_function(
                f"window.got.length === {len(PROTOCOL_NAMES) + 1}", timeout=DEADLINE_MS
            )
            assert page.evaluate(
                "(() => { const d = window.got.at(-1).data;"
                " return [({}).polluted, Object.keys(d).sort(), d.__proto__.polluted]; })()"
            ) == [None, ["__proto__", "constructor", "sender"], 1]

            # Over a socket, Mallory floods `published` messages (one with
            # data: null) while the victim waits for 40 acks of its own.
            token = mallory.post("/realtime/token", json={"channel": channel}).json
            ws = websocket.create_connection(token["url"], timeout=5)
            for _ in range(2):
                ws.recv()  # connected, subscribed
            flood = [
                json.dumps({"action": "publish", "event": "published", "data": d, "persist": False})
                for d in [None] + [{"id": 1, "n": n} for n in range(300)]
            ]
            sender = threading.Thread(target=lambda: [ws.send(f) for f in flood], daemon=True)
            sender.start()
            try:
                ack_ids = page.evaluate(PUBLISH_40)
            finally:
                sender.join(10)
                ws.close()
            page.wait_for_function(
                "window.got.filter((m) => m.data && m.data.from === 'victim').length === 40",
                timeout=DEADLINE_MS,
            )
            own_ids = page.evaluate(
                "window.got.filter((m) => m.data && m.data.from === 'victim')"
                ".sort((a, b) => a.data.n - b.data.n).map((m) => m.id)"
            )
            assert ack_ids == own_ids  # every ack is our own publish's, in order
            page.wait_for_function(
                f"window.got.length === {len(PROTOCOL_NAMES) + 1 + 40 + len(flood)}",
                timeout=DEADLINE_MS,
            )
            assert page.evaluate("window.got.filter((m) => m.data === null).length") == 1
            assert page.evaluate("window.errors") == []
            # Mallory's real socket came and went: the server's join and leave.
            page.wait_for_function(
                "[...window.ch.presence.keys()].join() === 'victim'", timeout=DEADLINE_MS
            )
            # History through the route, for exactly this channel: every persisted message.
            history = page.evaluate(
                "window.ch.history({ after: 0, limit: 100 }).then((h) => h.map((m) => m.channel))"
            )
            assert history == [channel] * (len(PROTOCOL_NAMES) + 1 + 40)
        finally:
            browser.close()
