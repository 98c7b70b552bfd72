"""When an ack wakes its publisher: after the frames read with it, never later than a block.

The reader matches an ack as soon as it reads it and wakes the publisher
just before its next socket read. So the message that comes in the same
read as its ack reaches the dispatcher first, and an ack is never held
while the reader waits on the socket: not for the rest of an unfinished
frame, and not past the socket's end.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

import pytest
import websocket
from aiohttp import web

from cohrt_sync import acks as acks_module
from cohrt_sync import connection as connection_module
from cohrt_sync.inbox import Inbox

from ._server import HostileServer


def server_frame(body: Dict[str, Any]) -> bytes:
    """``body`` as one unmasked text frame, as a server writes it."""
    frame = websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_TEXT, 0, json.dumps(body))
    return bytes(frame.format())


def answer_in_one_write(then: bytes = b"") -> Any:
    """An ``on_publish`` knob: the ack, the message and ``then``, in one write."""

    async def answer(ws: web.WebSocketResponse, frame: Dict[str, Any]) -> bool:
        channel = ws.channel  # type: ignore[attr-defined]
        ack = {"action": "published", "event": "published", "channel": channel,
               "created_at_ms": 1_700_000_000_000}
        message = {"action": "message", "event": "message", "channel": channel,
                   "data": frame.get("data"), "created_at_ms": 1_700_000_000_000}
        transport = ws._req.transport  # type: ignore[attr-defined]
        transport.write(server_frame(ack) + server_frame(message) + then)
        return True

    return answer


def test_a_message_read_with_its_ack_reaches_the_dispatcher_before_the_publisher_wakes(
    hostile: HostileServer, make_client: Any, channel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: List[acks_module.PendingAck] = []
    woken_at_offer: List[bool] = []

    class RecordedAck(acks_module.PendingAck):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    original_offer = Inbox.offer

    def offer(self: Inbox, frame: Dict[str, Any], *args: Any) -> bool:
        if frame.get("action") == "message" and made:
            woken_at_offer.append(made[-1].done.is_set())
        return original_offer(self, frame, *args)

    monkeypatch.setattr(connection_module, "PendingAck", RecordedAck)
    monkeypatch.setattr(Inbox, "offer", offer)
    hostile.on_publish = answer_in_one_write()
    ch = make_client().subscribe(channel_name, user_id="u1")
    for i in range(5):
        ack = ch.publish({"i": i}, persist=False)
        assert ack.channel == channel_name
    # Each message was queued for the dispatcher while its publisher still slept.
    assert woken_at_offer == [False] * 5


def test_an_ack_wakes_its_publisher_while_the_next_frame_is_unfinished(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    # The first two bytes of a 100-byte frame, and then nothing: the reader
    # blocks for the rest, and must not hold the ack it read before.
    hostile.on_publish = answer_in_one_write(then=b"\x81\x64")
    ch = make_client(ack_timeout=5.0).subscribe(channel_name, user_id="u1")
    done = threading.Event()
    acked: List[Any] = []

    def publish() -> None:
        acked.append(ch.publish({"n": 1}, persist=False, timeout=5.0))
        done.set()

    threading.Thread(target=publish, name="test-publisher", daemon=True).start()
    assert done.wait(3.0), "the ack was held while the reader waited for the next frame"
    assert acked[0].created_at_ms == 1_700_000_000_000


def test_an_ack_read_just_before_the_socket_closes_still_returns(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    close = bytes(websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_CLOSE, 0,
                                 (1000).to_bytes(2, "big")).format())
    hostile.on_publish = answer_in_one_write(then=close)
    ch = make_client().subscribe(channel_name, user_id="u1")
    ack = ch.publish({"n": 1}, persist=False)
    assert ack.created_at_ms == 1_700_000_000_000
