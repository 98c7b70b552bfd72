"""Credentials never leak: not into reprs, log records, exception text or the WebSocket trace."""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import pytest
import websocket

import cohrt_sync
from cohrt_sync.retry import Retry

from .conftest import KEY, CountingSession


def test_key_never_in_repr_logs_or_exceptions(server: Any, make_client: Any, channel_name: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The ?key= bootstrap path puts the key into URLs that urllib3 logs.
    session = CountingSession(rewrite=lambda u: u.replace("/edge/session", "/edge/no-session"))
    client = make_client(server, session=session)
    client.publish(channel_name, {"a": 1})
    client.history(channel_name)
    assert KEY not in repr(client)
    assert any("/edge/realtime" in r.getMessage() for r in caplog.records)
    # A connection error whose urllib3 message includes the URL and query string.
    dead = make_client(server, base_url="http://127.0.0.1:9", retry=Retry(total=0))
    with pytest.raises(cohrt_sync.CohrtConnectionError) as info:
        dead.history(channel_name)
    text = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "Max retries exceeded" in text
    assert KEY not in text
    assert KEY not in str(info.value)
    for record in caplog.records:
        assert KEY not in record.getMessage()
    with pytest.raises(cohrt_sync.AuthError) as auth:
        make_client(server, key=KEY + "x").history(channel_name)
    assert KEY not in str(auth.value)


def test_repr_shows_no_secrets(server: Any, make_client: Any, channel_name: str) -> None:
    client = make_client(server)
    ch = client.subscribe(channel_name, user_id="u")
    assert KEY not in repr(client) and KEY not in repr(ch)
    assert channel_name in repr(ch)


def test_tokens_never_in_websocket_trace_or_logs(server: Any, make_client: Any,
                                                 channel_name: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # websocket-client's trace logs the handshake request line, whose query
    # string carries the connection token; edge bearers are secrets as well.
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
