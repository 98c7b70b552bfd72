"""Storms and hangs: reconnect backoff, trickled handshakes and frames, Retry-After,
and close() while a subscribe waits on a request that hangs. (A lost ack's resync:
test_publish_while_reconnecting.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
from email.utils import formatdate
from typing import Any, List

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry
from tests.hostile._server import HostileServer, accept_key, json_response, raw_on_first_socket

from .conftest import Recorder, wait_until


def test_reconnects_whose_catch_up_fails_back_off(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str
) -> None:
    async def down(request: Any) -> Any:
        return json_response({"error": {"code": 500, "message": "db down"}}, 500)

    backoff = Retry(total=None, backoff_factor=0.1, backoff_max=30.0, jitter=0.0, budget=None)
    client = hostile_client(plugins=[recorder], reconnect_backoff=backoff,
                         retry=Retry(total=0, budget=1.0))
    client.subscribe(channel_name, "alice")
    hostile.on_history = down
    mints_before = hostile.hits.get("token", 0)
    started = time.monotonic()
    hostile.drop_all()
    # Each reconnect mints a token, then its catch-up fails. The waits before
    # the first four grow 0.1, 0.2, 0.4, 0.8 s: 1.5 s in all, where without
    # growth four reconnects took ~0.4 s.
    wait_until(lambda: hostile.hits.get("token", 0) - mints_before >= 4)
    took = time.monotonic() - started
    assert 1.4 <= took, took
    assert len(recorder.of("error")) >= 2


def _trickle_upgrade(step: float) -> Any:
    async def trickle(request: Any) -> Any:
        reply = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(request)}\r\n\r\n"
        ).encode()
        transport = request.transport
        for i in range(len(reply)):
            if transport is None or transport.is_closing():
                break
            transport.write(reply[i:i + 1])
            await asyncio.sleep(step)
        await asyncio.sleep(60)

    return trickle


def test_connect_timeout_bounds_a_trickled_handshake(
    hostile: HostileServer, hostile_client: Any, channel_name: str
) -> None:
    hostile.on_upgrade = _trickle_upgrade(0.1)  # ~13 s for the whole reply
    client = hostile_client(connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(cohrt_sync.CohrtTimeoutError, match=r"within 1\.0s"):
        client.subscribe(channel_name, "alice")
    assert time.monotonic() - started < 2.5


def test_a_trickled_frame_is_cut_by_the_read_stall_limit(
    hostile: HostileServer, hostile_client: Any, recorder: Recorder, channel_name: str
) -> None:
    # A 4096-byte text frame, sent a byte every 0.05 s (~200 s).
    hostile.on_subscribed = raw_on_first_socket(b"\x81\x7e\x10\x00", b" ", 4096, 0.05)
    client = hostile_client(plugins=[recorder], ping_interval=0.3, ping_timeout=0.5)
    ch = client.subscribe(channel_name, "alice")
    started = time.monotonic()
    recorder.wait_for(lambda: recorder.of("disconnected"))
    assert time.monotonic() - started < 3.0
    assert recorder.of("disconnected")[0][2] == "ping timeout"
    recorder.wait_for(lambda: recorder.of("reconnected"))
    assert ch.connected


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_a_long_retry_after_does_not_block_history(
    hostile: HostileServer, hostile_client: Any, channel_name: str, form: str
) -> None:
    async def limited(request: Any) -> Any:
        after = "86400" if form == "seconds" else formatdate(time.time() + 86400, usegmt=True)
        return json_response({"error": {"code": 429, "message": "slow down"}}, 429,
                             **{"Retry-After": after})

    hostile.on_history = limited
    client = hostile_client(retry=cohrt_sync.Retry())  # the default budget
    started = time.monotonic()
    with pytest.raises(cohrt_sync.RateLimitedError) as info:
        client.history(channel_name)
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after is not None and 86390 <= info.value.retry_after <= 86400


@pytest.mark.parametrize("endpoint", ["token", "sql", "history"])
def test_close_cuts_a_subscribe_whose_request_hangs(
    hostile: HostileServer, hostile_client: Any, channel_name: str, endpoint: str
) -> None:
    """The token mint, the anchor query and its history fallback run on the
    caller's thread; ``client.close()`` from another thread ends them."""
    release = threading.Event()

    async def hang(request: Any) -> Any:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 20)
        return None

    async def refuse(request: Any) -> Any:  # the anchor falls back to history
        return json_response({"error": {"code": 400, "message": "no SQL here"}}, 400)

    if endpoint == "history":
        hostile.on_sql = refuse
    setattr(hostile, f"on_{endpoint}", hang)
    client = hostile_client(timeout=30.0)
    outcome: List[BaseException] = []

    def subscribe() -> None:
        try:
            client.subscribe(channel_name, "alice")
        except BaseException as e:
            outcome.append(e)

    opener = threading.Thread(target=subscribe, name="test-subscribe")
    opener.start()
    try:
        wait_until(lambda: hostile.hits.get(endpoint, 0) >= 1)
        started = time.monotonic()
        client.close(timeout=2.0)
        opener.join(5.0)
        assert not opener.is_alive(), "subscribe() still waits on the hanging request"
        assert time.monotonic() - started < 4.0
        assert len(outcome) == 1 and isinstance(outcome[0], cohrt_sync.ChannelClosedError)
    finally:
        release.set()
        opener.join(5.0)
