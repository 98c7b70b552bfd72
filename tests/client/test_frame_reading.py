"""The channel socket's frame reader: whole frames, in order, a burst in few socket reads."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Iterator, List, Tuple

import pytest
import websocket

from cohrt_sync.frames import QUIET_READ, READ_AHEAD, MessageTooLarge, limit_message_size


def _server_frame(text: str) -> bytes:
    # fin=1, no rsv bits, text, mask=0: a server's frames are not masked.
    return bytes(websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_TEXT, 0, text.encode()).format())


@pytest.fixture
def pair() -> Iterator[Tuple[Any, socket.socket, List[int]]]:
    """A websocket-client socket over a real socket pair, counting its socket reads.

    ``ws.asked`` lists the size each socket read asked for, recorded before
    it blocks.
    """
    ours, theirs = socket.socketpair()
    ws: Any = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    ws.sock = ours
    ws.connected = True
    reads: List[int] = []
    ws.asked = []
    socket_recv = ws._recv

    def counted(bufsize: int) -> bytes:
        ws.asked.append(bufsize)
        data: bytes = socket_recv(bufsize)
        reads.append(len(data))
        return data

    ws._recv = counted
    limit_message_size(ws, 1 << 20)
    yield ws, theirs, reads
    ours.close()
    theirs.close()


def test_a_burst_of_small_frames_is_read_whole_in_order_in_few_socket_reads(pair: Any) -> None:
    ws, theirs, reads = pair
    texts = [json.dumps({"action": "message", "data": {"i": i, "pad": "x" * (i % 300)}})
             for i in range(2000)]
    # Sent from another thread in odd-sized pieces, so frames straddle reads.
    wire = b"".join(_server_frame(t) for t in texts)

    def send() -> None:
        for at in range(0, len(wire), 7777):
            theirs.sendall(wire[at:at + 7777])

    sender = threading.Thread(target=send)
    sender.start()
    got = [ws.recv_data()[1].decode() for _ in texts]
    sender.join(5)
    assert got == texts
    # Two reads a frame (header, then payload) would be 4,000.
    assert len(reads) < len(texts) // 10


def test_a_frame_larger_than_one_read_arrives_whole(pair: Any) -> None:
    ws, theirs, _ = pair
    big = "y" * (300 * 1024)
    sender = threading.Thread(
        target=theirs.sendall, args=(_server_frame(big) + _server_frame("after"),)
    )
    sender.start()
    assert ws.recv_data()[1].decode() == big
    sender.join(5)
    assert ws.recv_data()[1].decode() == "after"


def test_an_oversized_message_is_refused_from_its_header(pair: Any) -> None:
    ws, theirs, _ = pair
    theirs.sendall(_server_frame("ok") + _server_frame("z" * ((1 << 20) + 1))[:64])
    assert ws.recv_data()[1].decode() == "ok"
    with pytest.raises(MessageTooLarge):
        ws.recv_data()


def test_a_consumed_read_is_let_go(pair: Any) -> None:
    ws, theirs, _ = pair
    theirs.sendall(_server_frame("a") + _server_frame("b"))
    ws.recv_data()
    ws.recv_data()
    # An idle channel holds no read-ahead buffer.
    assert len(ws.frame_buffer._buf) == 0


def test_the_read_size_grows_under_a_burst_and_shrinks_back_when_quiet(pair: Any) -> None:
    ws, theirs, _ = pair
    # Quiet from the start: a blocked read holds a small buffer, not 64 KiB.
    theirs.sendall(_server_frame("hello"))
    assert ws.recv_data()[1] == b"hello"
    assert ws.asked == [QUIET_READ]
    # A burst: reads that come back full grow to READ_AHEAD.
    texts = [json.dumps({"i": i, "pad": "p" * 200}) for i in range(3000)]
    wire = b"".join(_server_frame(t) for t in texts)
    sender = threading.Thread(target=theirs.sendall, args=(wire,))
    sender.start()
    assert [ws.recv_data()[1].decode() for _ in texts] == texts
    sender.join(5)
    big_reads = [size for size in ws.asked if size == READ_AHEAD]
    assert len(big_reads) >= len(ws.asked) // 2 and len(ws.asked) < len(texts) // 10
    # The burst is over and the socket emptied: the read that waits for the
    # next frame (however long the channel stays quiet) is small again.
    got: List[bytes] = []
    waiter = threading.Thread(target=lambda: got.append(ws.recv_data()[1]))
    waiter.start()
    theirs.sendall(_server_frame("after"))
    waiter.join(5)
    assert got == [b"after"]
    assert ws.asked[-1] == QUIET_READ
    # A quiet read that comes back full switches straight back to read-ahead.
    big = "b" * (3 * QUIET_READ)
    theirs.sendall(_server_frame(big))
    assert ws.recv_data()[1].decode() == big
    assert ws.asked[-2:] == [QUIET_READ, READ_AHEAD]
