"""The browser's exactly-once ledger (cohrt-sync-delivery.js) as a pure unit, in Chromium.

The same cases as tests/client/test_delivery_ledger.py's core: ids, no ids,
identical messages in one millisecond, a live repeat of a caught-up message.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any, Iterator

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")

from flask_test_app import build_app  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)",
)

# Runs in the page: feeds a Ledger live messages and history rows, returns what it emitted.
SCENARIOS = """async () => {
  const { Ledger } = await import("/realtime/cohrt-sync-delivery.js");
  const msg = (text, created, id = null) => ({
    channel: "c", event: "message", action: "message", data: { text }, created_at_ms: created, id,
  });
  function ledger(history) {
    const out = [];
    const rows = async function* (after) { for (const m of history) if (m.id > after) yield m; };
    const l = new Ledger(rows, (m) => out.push(m.data.text), (e) => out.push("error " + e.message));
    return [l, out, history];
  }
  const results = {};
  {  // no ids: live a, b; history a, b, c -> c once; c live again -> dropped; d -> emitted
    const [l, out, h] = ledger([msg("a", 1, 1), msg("b", 2, 2), msg("c", 3, 3)]);
    l.lastId = 0;
    l.live(msg("a", 1)); l.live(msg("b", 2));
    await l.recover();
    l.live(msg("c", 3)); l.live(msg("d", 4));
    results.noIds = out;
  }
  {  // no ids, identical messages in one ms: two live, three in history -> one more
    const [l, out] = ledger([msg("x", 5, 1), msg("x", 5, 2), msg("x", 5, 3)]);
    l.lastId = 0;
    l.live(msg("x", 5)); l.live(msg("x", 5));
    await l.recover();
    results.sameMs = out;
  }
  {  // ids: 5 live; history 5, 6 -> 6; live 6 dropped, 7 emitted; id-less then emitted
    const [l, out] = ledger([msg("m5", 1, 5), msg("m6", 2, 6)]);
    l.lastId = 4;
    l.live(msg("m5", 1, 5));
    await l.recover();
    l.live(msg("m6", 2, 6)); l.live(msg("m7", 3, 7)); l.live(msg("typing", 4));
    results.ids = [...out, l.lastId];
  }
  {  // the cursor: rows at or before lastId are never emitted
    const [l, out] = ledger([msg("old", 1, 1), msg("new", 2, 2)]);
    l.lastId = 1;
    await l.recover();
    results.cursor = out;
  }
  {  // no cursor yet (the anchor never came): rows older than the subscription are not missed
    const [l, out] = ledger([msg("before", 1, 1), msg("after", 9, 2)]);
    l.openedAtMs = 5;
    await l.recover();
    results.noCursor = [...out, l.lastId];
  }
  return results;
}"""


@pytest.fixture
def page_url() -> Iterator[str]:
    http = make_server("127.0.0.1", 0, build_app({}), threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="ledger-test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}/"
    finally:
        http.shutdown()
        thread.join(5)


def test_the_js_ledger_emits_each_message_once_in_order(page_url: str) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(page_url)
            results: Any = page.evaluate(SCENARIOS)
        finally:
            browser.close()
    assert results == {
        "noIds": ["a", "b", "c", "d"],
        "sameMs": ["x", "x", "x"],
        "ids": ["m5", "m6", "m7", "typing", 7],
        "cursor": ["new"],
        "noCursor": ["after", 2],
    }
