"""Request heads in flight: bytes per head, and across all connections.

aiohttp bounds a request head only line by line (``max_line_size`` and
``max_field_size``, 8190 bytes) and by count (``max_headers``, 128), so one
head may hold a megabyte of parsed headers (about twice that in memory), and
nothing bounds the unfinished heads of all connections together: 300
connections each sending 126 headers of 8,100 bytes and never the blank line
that ends a head took a server from 49 to 651 MiB, before any credential was
checked. So each connection gets a :class:`HeadMeter`, which the protocol
hands every read before aiohttp's parser sees it:

* the bytes of a head are counted as they arrive, and a head over
  ``max_head_bytes`` is refused (431) before the parser holds more of it;
* bytes of heads still unfinished after a read are charged to one
  :class:`HeadBudget` for the whole server, and the read that would take it
  past :data:`HEADS_IN_FLIGHT_BYTES` is refused (503); a head that ends within
  the read it arrives in is never charged, so whole requests are served
  whatever the budget holds;
* the meter finds where a head ends (the first blank line) and where a
  ``Content-Length`` body ends itself, and feeds the parser up to those
  points, so the count is exact, also for pipelined requests. A chunked body's
  end is the parser's to find: it is fed with its head, and after such a
  request the connection is closed once its response is sent, so no head can
  hide behind it;
* parsed header values are kilobytes each, which glibc keeps once freed:
  after a flood of heads has drained, the budget asks it to return its free
  pages (:func:`trim_heap`), so the memory comes back.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import time
from typing import Any, Callable, NamedTuple, Optional

from aiohttp.http_parser import RawRequestMessage

log = logging.getLogger("cohrt_sync.server")

#: Bytes of unfinished request heads all connections together may hold; each
#: byte costs about two in memory once parsed (raw and decoded header values).
HEADS_IN_FLIGHT_BYTES = 16 << 20
#: What :meth:`HeadMeter.feed` answers when it refuses a read.
HEAD_TOO_LARGE = "head too large"
HEADS_BUSY = "heads in flight"

_HEAD_END = b"\r\n\r\n"


class Parsed(NamedTuple):
    """What the parser made of one piece of a read."""

    #: The request whose head the piece completed, or None.
    message: Any
    #: Whether the connection still speaks HTTP/1 requests (not upgraded nor closing).
    http: bool


class HeadBudget:
    """Bytes of unfinished request heads across a server's connections.

    Once the heads held at least half the budget and then drained, the C
    allocator is asked to hand its free pages back (:func:`trim_heap`): glibc
    would otherwise keep for good what a flood of heads left behind
    (measured: 62 instead of 92 MiB after 2,500 unfinished heads).

    :param max_head_bytes: most bytes of one request head.
    :param max_in_flight: most bytes of unfinished heads, all connections together.
    :param trim: what returns freed memory to the system.
    """

    def __init__(
        self,
        max_head_bytes: int,
        max_in_flight: int = HEADS_IN_FLIGHT_BYTES,
        trim: Callable[[], None] = lambda: trim_heap(),
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_in_flight = max_in_flight
        #: Bytes charged now.
        self.in_flight = 0
        self._trim = trim
        self._flooded = False
        self._trim_due: Optional[float] = None
        self._trimmed_at = -TRIM_EVERY_S

    def charge(self, size: int) -> None:
        """Count ``size`` more bytes of unfinished heads."""
        self.in_flight += size
        if self.in_flight >= self.max_in_flight // 2:
            self._flooded = True

    def give_back(self, size: int) -> None:
        """``size`` bytes of unfinished heads are gone; trim after a flood has drained."""
        self.in_flight -= size
        if self._flooded and self.in_flight <= self.max_in_flight // 16:
            self._flooded = False
            if self._trim_due is None:
                # Not at once: the closing connections still hold their
                # parsers; and at most every TRIM_EVERY_S, whatever floods come.
                now = time.monotonic()
                self._trim_due = max(now + TRIM_DELAY_S, self._trimmed_at + TRIM_EVERY_S)
                asyncio.get_running_loop().call_later(self._trim_due - now, self._trim_now)

    def _trim_now(self) -> None:
        self._trim_due = None
        self._trimmed_at = time.monotonic()
        self._trim()


#: Least seconds between two :func:`trim_heap` calls of one budget.
TRIM_EVERY_S = 5.0
#: Seconds from a flood draining to the trim, for its connections to be freed.
TRIM_DELAY_S = 1.0


@functools.cache
def _malloc_trim() -> Optional[Callable[[int], int]]:
    # Looked up once: find_library reads the linker's cache (a millisecond
    # or more), and trim_heap runs on the event loop.
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None
    return trim


def trim_heap() -> None:
    """Ask glibc to return free heap pages to the system (nothing elsewhere)."""
    trim = _malloc_trim()
    if trim is None:
        return
    trim(0)
    log.debug("returned free heap memory after a flood of request heads")


class HeadMeter:
    """One connection's unfinished head, counted as the reads arrive.

    :param budget: the server's :class:`HeadBudget`, charged and given back.
    """

    def __init__(self, budget: HeadBudget) -> None:
        self._budget = budget
        #: Bytes of the unfinished head (its charge to the budget).
        self.pending = 0
        #: A request with a chunked body came: close after its response.
        self.body_unknown = False
        self._body_left = 0
        # The head's last bytes, for a blank line split across two reads.
        self._tail = b""
        # The unfinished head mentions "chunked" (Transfer-Encoding, likely).
        self._chunked = False

    def feed(self, data: bytes, parse: Callable[[bytes], Parsed]) -> Optional[str]:
        """Hand ``data`` to ``parse`` piece by piece, counting head bytes.

        :param parse: feeds one piece to aiohttp's parser.
        :returns: None, or :data:`HEAD_TOO_LARGE` / :data:`HEADS_BUSY` when
            the rest of ``data`` was refused (and not parsed).
        """
        pos, n = 0, len(data)
        while pos < n:
            if self._body_left:
                take = min(self._body_left, n - pos)
                self._body_left -= take
                parse(data[pos : pos + take])
                pos += take
                continue
            if self.body_unknown:
                parse(data[pos:])
                return None
            end = self._head_end(data, pos)
            stop = n if end < 0 else end
            refusal = self._charge(stop - pos, finished=end >= 0)
            if refusal is not None:
                return refusal
            self._chunked = self._chunked or b"chunked" in data[pos:stop].lower()
            if end < 0:
                self._tail = (self._tail + data[max(pos, stop - 3) : stop])[-3:]
            else:
                self._tail = b""
                if self._chunked:
                    # A chunked body goes to the parser with the end of its
                    # head: fed apart, a malformed chunk would be refused
                    # where no handler sees it, and the request would hang.
                    stop = n
            parsed = parse(data[pos:stop])
            if parsed.message is not None:
                if not self._head_done(parsed.message, exact=stop == end):
                    return None  # the parser refused the head: the connection is closing
            elif end >= 0:
                # A blank line that ended no head (empty lines before a request
                # line, or a parser holding requests back): still the parser's.
                self.pending += stop - pos
                self._budget.charge(stop - pos)
            pos = stop
            if not parsed.http:
                if pos < n:
                    parse(data[pos:])  # an upgraded protocol's first bytes
                return None
        return None

    def release(self) -> None:
        """Give the unfinished head's bytes back to the budget (the connection is gone)."""
        if self.pending:
            self._budget.give_back(self.pending)
            self.pending = 0

    def _head_end(self, data: bytes, pos: int) -> int:
        """Index just past the blank line ending the head in ``data[pos:]``, or -1."""
        if self._tail:
            joined = self._tail + data[pos : pos + 3]
            i = joined.find(_HEAD_END)
            if i >= 0:
                return pos + i + 4 - len(self._tail)
        i = data.find(_HEAD_END, pos)
        return -1 if i < 0 else i + 4

    def _charge(self, size: int, finished: bool) -> Optional[str]:
        budget = self._budget
        if self.pending + size > budget.max_head_bytes:
            return HEAD_TOO_LARGE
        if finished:
            # Parsed and given back at once: never held against the budget.
            return None
        if budget.in_flight + size > budget.max_in_flight:
            return HEADS_BUSY
        self.pending += size
        budget.charge(size)
        return None

    def _head_done(self, message: Any, exact: bool) -> bool:
        """Settle a finished head; False if it was the parser's refusal, not a request."""
        self.release()
        self._tail = b""
        self._chunked = False
        if not isinstance(message, RawRequestMessage):
            return False
        length = message.headers.get("Content-Length", "")
        body = int(length) if length.isdigit() else 0
        if message.chunked or (body and not exact):
            # Where the body ends is the parser's to know (or the body was fed
            # along with its head).
            self.body_unknown = True
        else:
            self._body_left = body
        return True


__all__ = [
    "HEADS_BUSY",
    "HEADS_IN_FLIGHT_BYTES",
    "HEAD_TOO_LARGE",
    "HeadBudget",
    "HeadMeter",
    "Parsed",
]
