"""Inbox parking: a dispatcher loop that parks when idle, resumed by the next put, loses nothing."""

from __future__ import annotations

import random
import threading
import time
from typing import Any, List

from cohrt_sync._latch import Latch
from cohrt_sync.inbox import STOP, Inbox

from .conftest import wait_until


class Loop:
    """A dispatcher as the channel makes one: a thread running Inbox.run, resumed on demand."""

    def __init__(self, inbox: Inbox, idle: float, fail_resumes: int = 0) -> None:
        self.inbox = inbox
        self.idle = idle
        self.got: List[Any] = []
        self.threads: List[threading.Thread] = []
        self.parks = 0
        self.fail_resumes = fail_resumes
        self.closing = Latch()

    def start(self) -> None:
        thread = threading.Thread(target=self._main, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _resume(self) -> bool:
        if self.fail_resumes:
            self.fail_resumes -= 1
            return False
        self.start()
        return True

    def _parked(self) -> None:
        self.parks += 1

    def _main(self) -> None:
        self.inbox.run(self.got.append, self.closing, 0.0, self.idle, self._resume, self._parked)


def test_puts_racing_the_loop_as_it_parks_are_never_lost_and_keep_their_order() -> None:
    inbox = Inbox()
    loop = Loop(inbox, idle=0.0005)
    loop.start()
    rng = random.Random(23)
    sent = []
    for n in range(3000):
        inbox.put_frame({"n": n}, 1)
        sent.append({"n": n})
        if rng.random() < 0.05:
            # Pauses around the idle time, so puts land just before, during and
            # just after the loop decides to park.
            time.sleep(rng.choice((0.0002, 0.0005, 0.0008, 0.002)))
    wait_until(lambda: len(loop.got) == len(sent), timeout=10)
    assert loop.got == sent
    assert inbox.backlog_bytes == 0
    wait_until(lambda: inbox.parked, timeout=5)
    # Every thread parked once and was followed by the next: it did park, often.
    assert loop.parks == len(loop.threads) > 10, (loop.parks, len(loop.threads))
    wait_until(lambda: not any(t.is_alive() for t in loop.threads), timeout=5)


def test_a_resume_that_fails_leaves_the_items_for_the_next_put_to_try_again() -> None:
    inbox = Inbox()
    loop = Loop(inbox, idle=0.001, fail_resumes=1)
    loop.start()
    wait_until(lambda: inbox.parked, timeout=5)
    inbox.put(("error", "first"))  # its resume fails: it waits
    assert inbox.parked and len(inbox) == 1 and loop.got == []
    inbox.put(("error", "second"))
    wait_until(lambda: len(loop.got) == 2, timeout=5)
    assert loop.got == [("error", "first"), ("error", "second")]


def test_stop_resumes_a_parked_loop_which_then_ends_without_parking() -> None:
    inbox = Inbox()
    loop = Loop(inbox, idle=0.001)
    loop.start()
    wait_until(lambda: inbox.parked, timeout=5)
    parks = loop.parks
    inbox.put(STOP)
    wait_until(lambda: not any(t.is_alive() for t in loop.threads), timeout=5)
    assert len(loop.threads) == 2 and loop.parks == parks and not inbox.parked


def test_without_idle_the_loop_never_parks() -> None:
    inbox = Inbox()
    got: List[Any] = []
    closing = Latch()
    thread = threading.Thread(target=inbox.run, args=(got.append, closing, 0.0), daemon=True)
    thread.start()
    inbox.put(("error", "x"))
    wait_until(lambda: got == [("error", "x")], timeout=5)
    assert thread.is_alive() and not inbox.parked
    inbox.put(STOP)
    thread.join(5)
    assert not thread.is_alive()
