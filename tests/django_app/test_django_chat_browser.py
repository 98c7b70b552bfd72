"""The test project's chat page in headless Chromium: two users, presence, messages, typing.

The same journey as tests/flask/test_flask_chat_browser.py, on Django: the
project runs on Django's own threaded development server (the one
``runserver`` uses) with a real local server behind it. The page names no
CSRF token: cohrt-sync.js sends Django's ``csrftoken`` cookie as
``X-CSRFToken`` on the POST routes, and the project keeps
``CsrfViewMiddleware`` on.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any, Callable, Iterator, List

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

import cohrt_sync  # noqa: E402

from .conftest import KEY  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install it with `apt-get install -y chromium` (.ci/run does)",
)

DEADLINE_MS = 10_000


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(realtime: Callable[..., None]) -> Iterator[str]:
    """The project over HTTP on a free port, its realtime settings on the shared local server."""
    realtime()
    http = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    http.set_app(get_wsgi_application())
    thread = threading.Thread(target=http.serve_forever, name="django-chat-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)


def enter(browser: Any, url: str, name: str) -> Any:
    page = browser.new_context().new_page()
    errors: List[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/login")
    page.fill("#name", name)
    page.click("#enter")
    try:
        page.wait_for_function("window.chatReady === true", timeout=DEADLINE_MS)
    except Exception:
        status = page.text_content("#status") if page.query_selector("#status") else None
        raise AssertionError(f"{name}'s page did not get ready: {status} {errors}") from None
    return page


def test_two_users_see_each_other_chat_and_type(site: str, server: Any) -> None:
    channel = "room:lobby"
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
        earlier = direct.publish(channel, {"text": "before anyone came"}).id
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            ada = enter(browser, site, "Ada")
            ben = enter(browser, site, "Ben")
            me = {p: p.evaluate("window.chatChannel.user") for p in (ada, ben)}
            assert me[ada]["name"] == "Ada" and me[ben]["name"] == "Ben"  # request.user

            # Presence of both, on both pages.
            for page in (ada, ben):
                for user in me.values():
                    page.wait_for_selector(
                        f'#presence li[data-id="{user["id"]}"]', timeout=DEADLINE_MS
                    )

            # Scrollback through history?newest=50: what was persisted before.
            older = ben.evaluate("window.scrollbackLog")
            assert [m["id"] for m in older][-1] == earlier
            assert older[-1]["text"] == "before anyone came"

            # A message through the publish route (a CSRF-checked POST), with
            # the sender stamped from request.user.
            ada.fill("#text", "hello from ada")
            ada.press("#text", "Enter")
            ben.wait_for_function(
                "window.chatLog.some(m => m.text === 'hello from ada')", timeout=DEADLINE_MS
            )
            hello = [m for m in ben.evaluate("window.chatLog") if m["text"] == "hello from ada"]
            assert [m["sender"] for m in hello] == [me[ada]]

            # Typing is seen, and never persisted.
            ben.type("#text", "hi")
            ada.wait_for_function(
                "document.getElementById('typing').textContent.includes('Ben typing')",
                timeout=DEADLINE_MS,
            )
            with cohrt_sync.Client(key=KEY, base_url=server.base_url) as direct:
                events = [m.event for m in direct.history(channel, after=earlier, limit=100)]
            assert events == ["message"]

            # close(): Bob's socket goes, and Alice sees him leave.
            ben.evaluate("window.chatChannel.close()")
            ada.wait_for_selector(
                f'#presence li[data-id="{me[ben]["id"]}"]', state="detached", timeout=DEADLINE_MS
            )
        finally:
            browser.close()
