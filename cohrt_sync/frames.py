"""Reading a socket's frames: bounded in size, read ahead in gulps of up to 64 KiB.

websocket-client's frame reader asks the socket for each frame's 2-byte
header, then for its payload: two ``recv`` calls a frame. Each one releases
the interpreter lock, and a reader thread that gives the lock up twice a
frame waits for it behind the dispatcher thread every time (up to the
switch interval). :class:`BoundedFrames` keeps websocket-client's framing
but serves it from one read of up to :data:`READ_AHEAD` bytes, so a burst of
small frames costs one system call (and one lock hand-over) per few hundred.
It also refuses a message over the client's ``max_message_size`` as soon as a
header announces it, before any of it is buffered.

A read allocates the whole size it asks for before it blocks, and an idle
channel's reader spends its life blocked in one: asking for 64 KiB there
would hold 64 KiB per idle socket, resident once the allocator hands it
memory a burst touched before. So the read size follows the socket: a read
that came back full (more is waiting: a burst, or a large message) makes the
next one ask for :data:`READ_AHEAD`; one that came back short emptied the
socket, so the next, which may wait for the socket's next frame for as long
as the channel stays quiet, asks for :data:`QUIET_READ`. A burst costs one
small read more each time the reader catches up with the sender.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import websocket
from websocket._abnf import frame_buffer

__all__ = ["QUIET_READ", "READ_AHEAD", "BoundedFrames", "MessageTooLarge", "limit_message_size"]

#: Bytes asked of the socket per read while frames keep coming. A buffer is
#: let go once consumed.
READ_AHEAD = 64 * 1024
#: Bytes asked of a quiet socket: what a blocked read holds while it waits.
#: A read this size that comes back full switches to :data:`READ_AHEAD`.
QUIET_READ = 1024


class MessageTooLarge(websocket.WebSocketProtocolException):
    """A frame header announced a message over the client's ``max_message_size``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a message of {size} bytes is over max_message_size ({limit})")
        self.size = size
        self.limit = limit


class BoundedFrames(frame_buffer):
    """websocket-client's frame reader over a read-ahead buffer, with a size limit.

    :param ws: the ``websocket.WebSocket`` whose socket it reads.
    :param limit: the largest message accepted (all its fragments), in bytes.
    """

    def __init__(self, ws: Any, limit: int) -> None:
        super().__init__(self._read, True)
        self._socket_recv: Callable[[int], bytes] = ws._recv
        self._cont = ws.cont_frame
        self._limit = limit
        self._buf = b""
        self._pos = 0
        #: What the next socket read asks for (see the module's docstring).
        self.read_size = QUIET_READ
        #: Called before each socket read, which may block: what the reader
        #: held back until then (its publishers' wake-ups) is let go.
        self.before_read: Optional[Callable[[], None]] = None

    def _read(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes: from the buffer, refilled by one socket read when empty."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            # Raises (closed, timed out, cut) as the socket's own recv does.
            want = self.read_size
            before = self.before_read
            if before is not None:
                before()
            buf = self._socket_recv(want)
            self.read_size = READ_AHEAD if len(buf) >= want else QUIET_READ
            pos = 0
        end = pos + bufsize
        if end >= len(buf):
            self._buf, self._pos = b"", 0
            return buf[pos:] if pos else buf
        self._buf, self._pos = buf, end
        return buf[pos:end]

    def recv_strict(self, bufsize: int) -> bytes:
        """Exactly ``bufsize`` bytes (websocket-client's, with a fast path for buffered ones)."""
        buf, pos = self._buf, self._pos
        end = pos + bufsize
        if end <= len(buf) and not self.recv_buffer:
            # The frame is in the buffer already: one slice, no list, no join.
            if end == len(buf):
                self._buf, self._pos = b"", 0
            else:
                self._pos = end
            return buf[pos:end]
        data: bytes = super().recv_strict(bufsize)
        return data

    def recv_length(self) -> None:
        """Read the frame's length and refuse a message over the limit."""
        frame_buffer.recv_length(self)  # what super() finds, without building it each frame
        size = self.length or 0
        cont = self._cont.cont_data
        if cont is not None:
            size += len(cont[1])  # the fragments of this message so far
        if size > self._limit:
            raise MessageTooLarge(size, self._limit)


def limit_message_size(ws: Any, limit: int) -> None:
    """Make ``ws`` read ahead, and refuse any message (all its fragments) over ``limit`` bytes.

    websocket-client has no such setting, and buffers whatever length a
    frame header claims (2**62 bytes, if a server says so).

    :param ws: a ``websocket.WebSocket`` not yet connected.
    :param limit: the largest message accepted, in bytes.
    """
    ws.frame_buffer = BoundedFrames(ws, limit)
