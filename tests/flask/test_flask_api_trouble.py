"""When the realtime API is down or hangs: a short browser-safe error, in time for the worker.

A sync worker that waits on a hanging API past its own timeout (gunicorn's
is 30 s) is killed before it answers, and the browser sees a dropped
connection. The routes' client gives up after ``COHRT_TIMEOUT`` (10 s by
default) and answers 504. When the API is unreachable the browser reads
one short line, not the HTTP client's internals (hosts, ports, urllib3's
pool class); the log keeps those.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest
from flask_test_app import KEY, build_app, login

from cohrt_sync.web.errors import BROWSER_MESSAGES
from tests.hostile._server import KEY as HOSTILE_KEY
from tests.hostile._server import HostileServer

pytest.importorskip("aiohttp", reason="needs the [server] extra")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _hang(request: Any) -> Any:
    await asyncio.sleep(60)


def test_an_api_that_is_down_reads_as_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    app = build_app({"COHRT_KEY": KEY, "COHRT_BASE_URL": f"http://127.0.0.1:{port}"})
    c = app.test_client()
    login(c)
    with caplog.at_level(logging.WARNING, logger="cohrt_sync.web"):
        r = c.post("/realtime/token", json={"channel": "chat:down"})
    app.extensions["test_cohrt"].close(app)
    assert r.status_code == 502
    assert r.json["error"] == {
        "code": 502, "message": BROWSER_MESSAGES[502], "status": "BAD_GATEWAY"
    }
    text = r.get_data(as_text=True)
    for internal in ("127.0.0.1", str(port), "Max retries", "Pool", "urllib3", KEY):
        assert internal not in text, internal
    # The operator's log has what the browser does not.
    (record,) = [r for r in caplog.records if r.name == "cohrt_sync.web"]
    assert "CohrtConnectionError" in record.getMessage() and str(port) in record.getMessage()


@pytest.mark.parametrize("timeout,bound", [(None, 12.0), (1.5, 3.0)], ids=["default", "1.5s"])
def test_a_hanging_api_is_a_504_well_within_a_workers_timeout(
    timeout: Any, bound: float
) -> None:
    config = {"COHRT_KEY": HOSTILE_KEY}
    if timeout is not None:
        config["COHRT_TIMEOUT"] = timeout
    with HostileServer() as hostile:
        hostile.on_token = _hang
        config["COHRT_BASE_URL"] = hostile.base_url
        app = build_app(config)
        c = app.test_client()
        login(c)
        started = time.monotonic()
        r = c.post("/realtime/token", json={"channel": "chat:hang"})
        took = time.monotonic() - started
        app.extensions["test_cohrt"].close(app)
    assert r.status_code == 504, r.json
    assert r.json["error"]["message"] == BROWSER_MESSAGES[504]
    # gunicorn kills a sync worker after 30 s; the answer comes well before.
    assert took < bound, took
    assert took >= (timeout or 10.0) * 0.9  # it did wait for the API, as long as it may
