"""Turning a termination signal into an exception in the main thread, so it unwinds like Ctrl-C.

A signal handler runs in the main thread between two bytecodes, possibly while
that thread holds a lock (an ``Event.wait`` holds its condition's lock at
moments), so the handler does no work itself: it raises, and the code that
was waiting closes things in its ``except``/``finally`` as it does for
``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
from typing import Any, Dict, Iterator, Sequence

__all__ = ["SignalReceived", "raise_on_signals", "sleep_until_signal"]


class SignalReceived(Exception):
    """A signal that :func:`raise_on_signals` turned into an exception.

    :param signum: the signal's number (``signal.SIGTERM`` …).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def raise_on_signals(signums: Sequence[int], *, only_default: bool = True) -> Iterator[bool]:
    """Within the block, each of ``signums`` raises :class:`SignalReceived` in the main thread.

    Nothing is installed off the main thread (Python allows handlers only
    there), nor, with ``only_default``, over a handler the application set
    itself. The previous handlers are restored on exit.

    :param signums: the signals to catch.
    :param only_default: leave a signal alone when it already has a handler
        other than the default action.
    :returns: (as the ``with`` target) whether any handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return

    def handler(signum: int, frame: Any) -> None:
        raise SignalReceived(signum)

    previous: Dict[int, Any] = {}
    for signum in signums:
        current = signal.getsignal(signum)
        if only_default and current is not signal.SIG_DFL:
            continue
        previous[signum] = current
        signal.signal(signum, handler)
    try:
        yield bool(previous)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def sleep_until_signal() -> None:
    """Block the main thread until a signal's handler runs; it raises out of here.

    ``time.sleep`` or ``signal.pause`` would wake only for a signal the kernel
    delivers to the main thread. A process-directed signal may go to any
    thread that doesn't block it (often one of the server's after a SIGSTOP
    and SIGCONT), and Python then runs the handler only when the main thread
    next runs bytecode: an hour later. The interpreter's C handler writes to
    the wakeup fd from whichever thread took the signal, so waiting on that
    fd wakes the main thread for every signal.

    :raises RuntimeError: off the main thread (only it runs signal handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("sleep_until_signal() must run in the main thread")
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        while True:
            select.select([reader], [], [])
            with contextlib.suppress(BlockingIOError, InterruptedError):
                reader.recv(512)
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
