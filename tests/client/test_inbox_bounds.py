"""Inbox.offer: the reader's one call a frame, refusing a frame past either bound."""

from __future__ import annotations

import threading

from cohrt_sync.inbox import Inbox


def test_offer_refuses_past_the_frame_bound_and_appends_nothing() -> None:
    inbox = Inbox()
    assert inbox.offer({"n": 1}, 10, 2, 1000)
    assert inbox.offer({"n": 2}, 10, 2, 1000)
    assert not inbox.offer({"n": 3}, 10, 2, 1000)
    assert len(inbox) == 2 and inbox.backlog_bytes == 20


def test_offer_refuses_past_the_byte_bound_but_takes_a_large_frame_into_an_empty_backlog() -> None:
    inbox = Inbox()
    assert inbox.offer({"big": True}, 500, 10, 100)  # alone, it must be able to pass
    assert not inbox.offer({"n": 1}, 1, 10, 100)
    assert inbox.backlog_bytes == 500


def test_offered_frames_come_out_in_order_and_their_bytes_are_released() -> None:
    inbox = Inbox()
    for n in range(3):
        assert inbox.offer({"n": n}, 7, 10, 1000)
    inbox.put(("error", "x"))
    got = []
    closing = threading.Event()

    def handle(item: object) -> None:
        got.append(item)
        if len(got) == 4:
            closing.set()

    inbox.run(handle, closing, 0.0)
    assert got == [{"n": 0}, {"n": 1}, {"n": 2}, ("error", "x")]
    assert inbox.backlog_bytes == 0
