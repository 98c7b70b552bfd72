"""Regression tests for bugs found in review: each failed before its fix."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import pytest

import cohrt_sync

from .conftest import client_threads, wait_until


def test_client_close_from_on_closed_does_not_stall(server: Any, make_client: Any,
                                                    channel_name: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # client.close() is joining the dispatcher, which runs on_closed, which calls
    # client.close() again: the re-entrant close must not wait for itself.
    caplog.set_level(logging.WARNING, logger="cohrt_sync.channel")
    called = threading.Event()

    class ShutDownOnClose:
        @cohrt_sync.hookimpl
        def on_closed(self, channel: Any) -> None:
            channel.client.close()
            channel.close()
            called.set()

    client = make_client(server, plugins=[ShutDownOnClose()])
    client.subscribe(channel_name, user_id="u")
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 2
    assert called.is_set()
    assert not any("still running" in r.getMessage() for r in caplog.records)
    wait_until(lambda: not client_threads(), timeout=5)


def test_hook_closing_client_while_main_closes(server: Any, make_client: Any,
                                               channel_name: str) -> None:
    entered = threading.Event()
    release = threading.Event()

    class Closer:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            entered.set()
            release.wait(5)
            channel.client.close()

    client = make_client(server, plugins=[Closer()])
    ch = client.subscribe(channel_name, user_id="u")
    ch.publish({"x": 1})
    assert entered.wait(5)
    threading.Timer(0.1, release.set).start()
    start = time.monotonic()
    client.close()   # joins the dispatcher, whose hook calls client.close() meanwhile
    assert time.monotonic() - start < 2
    wait_until(lambda: not client_threads(), timeout=5)


def test_tokens_never_in_websocket_trace_or_logs(server: Any, make_client: Any,
                                                 channel_name: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # websocket-client's trace logs the handshake request line, whose query
    # string carries the connection token; edge bearers are secrets as well.
    import websocket

    caplog.set_level(logging.DEBUG)
    client = make_client(server)
    websocket.enableTrace(True, handler=logging.NullHandler())
    try:
        ch = client.subscribe(channel_name, user_id="u")
        ch.publish({"x": 1})
    finally:
        websocket.enableTrace(False)
        logging.getLogger("websocket").setLevel(logging.NOTSET)
    bearer = client._http._bearer
    assert bearer
    messages = [r.getMessage() for r in caplog.records]
    assert any("/edge/realtime?" in m for m in messages)  # the trace did log the URL
    for m in messages:
        assert not re.search(r"token=(?!\*\*\*)", m), m
        assert bearer not in m, m
