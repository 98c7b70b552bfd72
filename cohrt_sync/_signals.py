"""Turning a termination signal into an exception in the main thread, so it unwinds like Ctrl-C.

A signal handler runs in the main thread between two bytecodes, possibly while
that thread holds a lock (an ``Event.wait`` holds its condition's lock at
moments), so the handler does no work itself: it raises, and the code that
was waiting closes things in its ``except``/``finally`` as it does for
``KeyboardInterrupt``. :func:`close_on_sigterm` does the same for a whole
process whose server leaves SIGTERM at its default (waitress, ``flask
run``): it raises ``SystemExit(0)``, and the interpreter's exit closes
the clients.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import socket
import threading
from typing import Any, Dict, Iterator, Sequence

__all__ = ["SignalReceived", "close_on_sigterm", "raise_on_signals", "sleep_until_signal"]

log = logging.getLogger("cohrt_sync")


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


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # A second SIGTERM while closing ends the process at once, as a second
    # Ctrl-C would: the default action is back before anything unwinds.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(0)


def close_on_sigterm(*, replace: bool = False) -> bool:
    """Make SIGTERM close this process's clients and exit 0, where nothing else handles it.

    Python's default for SIGTERM ends the process at once: no ``on_closed``
    hook, no close frame (the other members see the process leave only when
    the server's ping times out), no ``atexit``, exit status -15. Servers
    such as gunicorn and uWSGI handle SIGTERM themselves; waitress,
    ``flask run`` and ``manage.py runserver --noreload`` do not. Call this
    once at start-up (in ``create_app``, ``wsgi.py``, a Django
    ``AppConfig.ready``): SIGTERM then raises ``SystemExit(0)`` in the main
    thread, the server's loop unwinds as it does for Ctrl-C, and at the
    interpreter's exit the library closes every client of this process
    (each channel's ``on_closed`` fires, its socket sends a close frame,
    its threads are joined). A second SIGTERM ends the process at once.

    Only the main thread may set a signal handler, and a handler set before
    (by the application or the server) is kept unless ``replace`` is True;
    in both cases nothing changes and the call returns False. Calling it
    again is harmless. docs/lifecycle.md, "Web servers and SIGTERM", says
    which servers need it.

    :param replace: set the handler even over one the application or the
        server set (never needed under the servers named above).
    :returns: whether SIGTERM now closes the clients and exits.
    """
    if threading.current_thread() is not threading.main_thread():
        log.warning("close_on_sigterm() must be called in the main thread; SIGTERM left as it is")
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _exit_on_sigterm:
        return True
    if current is not signal.SIG_DFL and not replace:
        log.info("SIGTERM already has a handler (%r): close_on_sigterm() left it", current)
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return True
