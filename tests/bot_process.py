"""A bot command (``flask cohrt listen``, ``manage.py cohrt_listen``) run as a user runs it.

:class:`BotProcess` is the command in a child process whose stdout lines a
thread reads; :class:`Watcher` is a second member of the bot's channel that
records what it sees; :func:`next_event` waits for one event among those.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import cohrt_sync

DEADLINE = 20.0


class BotProcess:
    """``cmd`` in a child process; its stdout read line by line by a thread."""

    def __init__(self, cmd: List[str], cwd: Path, env: Dict[str, str]) -> None:
        # A shell that starts the suite in the background (`nohup … &`, a CI
        # runner) ignores SIGINT, and a child inherits an ignored signal:
        # Python then leaves it ignored and the bot never sees its Ctrl-C.
        # A handler of our own is reset to the default across exec, so the
        # bot gets SIGINT as a terminal would deliver it.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            # faulthandler prints every thread's stack on SIGABRT: what a bot
            # that outlived its deadline was doing (see stop()).
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env={**env, "PYTHONFAULTHANDLER": "1"},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="bot-stdout").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def line(self) -> Dict[str, Any]:
        """The next JSON line the bot prints; its stderr in the failure if none comes."""
        try:
            return json.loads(self.lines.get(timeout=DEADLINE))  # type: ignore[no-any-return]
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(self.proc.communicate(timeout=10)[1]) from None

    def stop(self, signum: int) -> int:
        """Send ``signum`` and wait for the exit status.

        :raises AssertionError: no exit by the deadline; it holds the bot's
            stderr with every thread's stack, dumped on SIGABRT.
        """
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(10)
                assert self.proc.stderr is not None
                err = self.proc.stderr.read()
            except subprocess.TimeoutExpired:
                err = "(no stack: the bot did not abort either)"
            raise AssertionError(
                f"the bot did not exit within {DEADLINE:.0f} s of {signal.Signals(signum).name}:\n"
                f"{err}"
            ) from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


class Watcher:
    """What a second member of the bot's channel sees."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.left: queue.Queue[Any] = queue.Queue()

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        self.messages.put(message)

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: Any) -> None:
        self.left.put(user)


def next_event(q: queue.Queue[Any], event: str) -> Optional[Any]:
    """The next message in ``q`` whose event is ``event``, or None by the deadline."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            item = q.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            return None
        if item.event == event:
            return item
    return None
