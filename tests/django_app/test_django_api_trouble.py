"""When the realtime API is down or hangs, the Django routes answer a short error in time.

The same web core as Flask's (tests/flask/test_flask_api_trouble.py): a
browser-safe line instead of the HTTP client's internals, and a 504 within
``COHRT_TIMEOUT`` rather than after the client's 30 s read timeout, which
equals gunicorn's worker timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any, Callable

import pytest
from django.test import Client as DjangoClient

from cohrt_sync.web.errors import BROWSER_MESSAGES
from tests.hostile._server import KEY as HOSTILE_KEY
from tests.hostile._server import HostileServer


async def _hang(request: Any) -> Any:
    await asyncio.sleep(60)


def test_an_api_that_is_down_reads_as_one_short_line(
    realtime: Callable[..., None], browser: DjangoClient, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    realtime(COHRT_BASE_URL=f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger="cohrt_sync.web"):
        r = browser.get("/realtime/history?channel=chat:down")
    assert r.status_code == 502
    assert r.json()["error"]["message"] == BROWSER_MESSAGES[502]
    for internal in ("127.0.0.1", str(port), "Max retries", "Pool"):
        assert internal not in r.content.decode(), internal
    assert any(str(port) in rec.getMessage() for rec in caplog.records)


def test_a_hanging_api_is_a_504_within_cohrt_timeout(
    realtime: Callable[..., None], browser: DjangoClient
) -> None:
    with HostileServer() as hostile:
        hostile.on_history = _hang
        realtime(
            COHRT_KEY=HOSTILE_KEY,
            COHRT_BASE_URL=hostile.base_url,
            COHRT_TIMEOUT=1.5,
            COHRT_CLIENT_OPTIONS={},
        )
        started = time.monotonic()
        r = browser.get("/realtime/history?channel=chat:hang")
        took = time.monotonic() - started
    assert r.status_code == 504
    assert r.json()["error"] == {
        "code": 504, "message": BROWSER_MESSAGES[504], "status": "DEADLINE_EXCEEDED"
    }
    assert 1.3 <= took < 3.0, took
