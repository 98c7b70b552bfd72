"""Latch: the set-once flag a channel's closing, closed and publish acks wait on."""

from __future__ import annotations

import threading
import time
import tracemalloc
from typing import Callable, List

from cohrt_sync._latch import Latch


def test_wait_times_out_unset_and_passes_at_once_once_set() -> None:
    latch = Latch()
    assert not latch.is_set()
    started = time.monotonic()
    assert latch.wait(0.05) is False
    assert time.monotonic() - started >= 0.04
    assert latch.wait(0) is False and latch.wait(-1) is False
    latch.set()
    assert latch.is_set()
    for timeout in (None, 0, -1, 0.01):
        assert latch.wait(timeout) is True


def test_set_wakes_every_waiter_and_stays_set() -> None:
    latch = Latch()
    woke: List[bool] = []
    waiters = [threading.Thread(target=lambda: woke.append(latch.wait(10))) for _ in range(8)]
    for t in waiters:
        t.start()
    time.sleep(0.02)  # let them block: the wake-up is what is tested
    latch.set()
    for t in waiters:
        t.join(5)
    assert woke == [True] * 8
    assert latch.wait(0) and latch.wait()


def _race(latch: Latch, errors: List[BaseException]) -> None:
    def run(job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as e:  # pragma: no cover - the failure asserted below
            errors.append(e)

    jobs: List[Callable[[], object]] = [latch.set] * 3 + [lambda: latch.wait(5)] * 3
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)


def test_racing_sets_and_waits_never_raise_and_leave_it_set() -> None:
    for _ in range(50):
        latch = Latch()
        errors: List[BaseException] = []
        _race(latch, errors)
        assert not errors
        assert latch.is_set() and latch.wait(0)


def test_a_latch_is_a_tenth_of_an_event() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        latches = [Latch() for _ in range(200)]
        per_latch = (tracemalloc.get_traced_memory()[0] - before) / len(latches)
        before = tracemalloc.get_traced_memory()[0]
        events = [threading.Event() for _ in range(200)]
        per_event = (tracemalloc.get_traced_memory()[0] - before) / len(events)
    finally:
        tracemalloc.stop()
    assert per_latch * 5 < per_event, (per_latch, per_event)
