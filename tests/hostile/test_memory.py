"""Memory stays bounded against a flood, a lying frame header, a long catch-up and an
HTTP answer too big to hold."""

from __future__ import annotations

import gzip
import threading
from typing import Any, Iterator, List

import pytest
from aiohttp import web

import cohrt_sync
from cohrt_sync.delivery import REPLAY_WINDOW, DeliveryLedger
from cohrt_sync.models import Message

from ._server import HostileServer, raw_on_first_socket
from .conftest import Recorder, wait_until

MB = 2**20


class Blocked(Recorder):
    """A recorder whose on_message blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        self.release.wait(20)
        super().on_message(channel, message)


def test_the_inbox_is_bounded_in_bytes(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    blocked = Blocked()
    client = make_client(plugins=[blocked], queue_bytes=4 * MB)
    ch = client.subscribe(channel_name, "alice")
    blob = "x" * MB
    high = [0]
    blocked.release.clear()

    async def flood() -> None:
        for n in range(24):
            await hostile._commit(channel_name, "message", {"n": n, "blob": blob})

    hostile.call(flood(), timeout=30)
    # The reader overflows at 4 MB of backlog instead of buffering all 24 MB
    # (the hook is blocked, so on_disconnected waits behind it: poll the channel).
    wait_until(lambda: not ch.connected)
    high[0] = ch._inbox.backlog_bytes
    assert high[0] <= 4 * MB + 2 * 4096, high[0]
    blocked.release.set()
    blocked.wait_for(lambda: blocked.of("disconnected"))
    assert blocked.of("disconnected")[0][2] == "dispatcher overflow"
    # Nothing lost, nothing twice: the catch-up delivers what the overflow skipped.
    blocked.wait_for(lambda: len(blocked.messages()) >= 24, timeout=20)
    assert [m.data["n"] for m in blocked.messages()] == list(range(24))


def test_a_frame_header_claiming_2_to_the_62_bytes_is_refused_as_it_arrives(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    # Then 1 MB every 10 ms, for as long as it is read.
    hostile.on_subscribed = raw_on_first_socket(
        b"\x81\x7f" + (2**62).to_bytes(8, "big"), b"[" * MB, 200, 0.01
    )
    client = make_client(plugins=[recorder], max_message_size=1 * MB)
    ch = client.subscribe(channel_name, "alice")
    recorder.wait_for(lambda: recorder.of("disconnected"))
    assert recorder.of("disconnected")[0][2] == "message too large"
    err = recorder.of("error")[0][2]
    assert isinstance(err, cohrt_sync.ProtocolError) and "max_message_size" in str(err)
    recorder.wait_for(lambda: recorder.of("reconnected"))
    ch.publish({"n": 1})
    recorder.wait_for(lambda: recorder.messages())


def test_a_message_over_the_limit_in_fragments_is_refused(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    chunk = b" " * 60_000
    size = len(chunk).to_bytes(2, "big")
    hostile.on_subscribed = raw_on_first_socket(
        b"\x01\x7e" + size + chunk  # text, not fin
        + b"\x00\x7e" + size + chunk  # its continuation: 120 000 bytes in all
    )
    client = make_client(plugins=[recorder], max_message_size=100_000)
    client.subscribe(channel_name, "alice")
    recorder.wait_for(lambda: recorder.of("disconnected"))
    assert recorder.of("disconnected")[0][2] == "message too large"


def _history(rows: List[Message]) -> Any:
    def history(after: int) -> Iterator[Message]:
        return iter([m for m in rows if m.id is not None and m.id > after])

    return history


def test_a_long_catch_up_keeps_bounded_state_and_releases_it() -> None:
    rows = [
        Message(channel="c", event="message", action="message",
                data={"n": n, "text": "y" * 200}, created_at_ms=1_000 + n, id=n)
        for n in range(1, 30_001)
    ]
    emitted: List[Message] = []
    ledger = DeliveryLedger(_history(rows), emitted.append, name="c")
    ledger.last_id = 0
    assert ledger.recover().error is None
    assert len(emitted) == 30_000
    kept = ledger._replayed
    assert sum(kept.values()) <= REPLAY_WINDOW
    assert all(isinstance(k, bytes) and len(k) == 16 for k in kept)
    # A live frame with an id: the server tags ids, fingerprints are dropped.
    ledger.deliver_live(Message(channel="c", event="message", action="message",
                                data={}, created_at_ms=99, id=30_001))
    assert not ledger._replayed and not ledger._replay_order


def test_a_recovered_row_repeated_live_is_still_dropped() -> None:
    rows = [Message(channel="c", event="message", action="message", data={"n": n},
                    created_at_ms=5_000, id=n) for n in (1, 2)]
    emitted: List[Message] = []
    ledger = DeliveryLedger(_history(rows), emitted.append, name="c")
    ledger.last_id = 0
    ledger.recover()
    live = Message(channel="c", event="message", action="message", data={"n": 2},
                   created_at_ms=5_000)
    ledger.deliver_live(live)
    assert [m.data for m in emitted] == [{"n": 1}, {"n": 2}]


def _streaming(total: int, sent: List[int], **headers: str) -> Any:
    """A history knob streaming ``total`` bytes of a JSON array, counting what it wrote."""

    async def stream(request: Any) -> Any:
        resp = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
        await resp.prepare(request)
        chunk = b"[" + b"1," * (32 * 1024)
        try:
            while sent[0] < total:
                await resp.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what it refused was never sent
        return resp

    return stream


def test_an_http_answer_over_max_response_size_is_refused_as_it_streams(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    sent = [0]
    hostile.on_history = _streaming(512 * MB, sent)
    client = make_client(max_response_size=1 * MB)
    with pytest.raises(cohrt_sync.ProtocolError) as info:
        client.history(channel_name)
    assert "max_response_size" in str(info.value)
    assert "/edge/realtime/history" in str(info.value)
    # Read no further than the limit (plus what socket buffers held): not 512 MB.
    assert sent[0] < 64 * MB


def test_a_content_length_over_max_response_size_is_refused_before_reading(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    sent = [0]
    hostile.on_history = _streaming(2 * MB, sent, **{"Content-Length": str(10**12)})
    client = make_client(max_response_size=1 * MB)
    with pytest.raises(cohrt_sync.ProtocolError, match="max_response_size"):
        client.history(channel_name)


def test_a_compressed_answer_is_bounded_by_its_decoded_size(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    bomb = gzip.compress(b"[" + b"0," * (16 * MB) + b"0]")  # about 32 MB, from about 32 KB

    async def gzipped(request: Any) -> Any:
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    hostile.on_history = gzipped
    client = make_client(max_response_size=1 * MB)
    with pytest.raises(cohrt_sync.ProtocolError, match="max_response_size"):
        client.history(channel_name)


def test_max_response_size_must_be_positive() -> None:
    with pytest.raises(cohrt_sync.BadRequestError, match="max_response_size"):
        cohrt_sync.Client(key="k", base_url="http://127.0.0.1:9", max_response_size=0)
