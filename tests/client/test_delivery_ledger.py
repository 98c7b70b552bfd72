"""The DeliveryLedger alone: a list as history, a list as the emit target."""

from __future__ import annotations

from typing import Iterator, List, Optional

import pytest

from cohrt_sync import delivery
from cohrt_sync.delivery import DeliveryLedger, fingerprint
from cohrt_sync.errors import CohrtConnectionError
from cohrt_sync.models import Message


def msg(n: int, msg_id: Optional[int] = None, ms: Optional[int] = None) -> Message:
    return Message(channel="c", event="message", action="message", data={"n": n},
                   created_at_ms=1000 + n if ms is None else ms, id=msg_id)


class Store:
    """Persisted rows and what the ledger emitted."""

    def __init__(self) -> None:
        self.rows: List[Message] = []
        self.emitted: List[Message] = []
        self.reads = 0
        self.fail = False

    def persist(self, n: int) -> Message:
        row = msg(n, msg_id=len(self.rows) + 1)
        self.rows.append(row)
        return row

    def history(self, after: int) -> Iterator[Message]:
        self.reads += 1
        if self.fail:
            raise CohrtConnectionError("history down")
        return iter([r for r in self.rows if r.id is not None and r.id > after])

    def ledger(self, **kw: bool) -> DeliveryLedger:
        led = DeliveryLedger(self.history, self.emitted.append, **kw)
        led.last_id = 0
        return led

    def seen(self) -> List[int]:
        return [m.data["n"] for m in self.emitted]


def idless(row: Message) -> Message:
    return Message(channel=row.channel, event=row.event, action=row.action, data=row.data,
                   created_at_ms=row.created_at_ms, id=None)


def test_live_ids_are_delivered_once_and_advance_the_cursor() -> None:
    s = Store()
    led = s.ledger()
    a, b = s.persist(1), s.persist(2)
    for m in (a, b, a):
        led.deliver_live(m)
    assert s.seen() == [1, 2] and led.last_id == 2


def test_recover_delivers_only_what_was_missed_in_id_order() -> None:
    s = Store()
    led = s.ledger()
    led.deliver_live(s.persist(1))
    s.persist(2)
    s.persist(3)
    assert led.recover() == (2, None)
    assert s.seen() == [1, 2, 3] and led.last_id == 3
    led.deliver_live(s.rows[2])  # the same message arriving live after the recovery
    assert s.seen() == [1, 2, 3]


def test_idless_live_messages_are_matched_by_fingerprint() -> None:
    s = Store()
    led = s.ledger()
    led.deliver_live(idless(s.persist(1)))
    led.deliver_live(msg(99, ms=1001))  # not persisted (persist: false)
    s.persist(2)
    assert led.recover().delivered == 1
    assert s.seen() == [1, 99, 2] and led.last_id == 2
    # A live repeat of the recovered row is dropped; a newer one clears the overlap.
    led.deliver_live(idless(s.rows[1]))
    led.deliver_live(idless(s.persist(3)))
    assert s.seen() == [1, 99, 2, 3]


def test_identical_messages_count_as_a_multiset() -> None:
    s = Store()
    led = s.ledger()
    first = s.persist(1)
    s.rows.append(Message(channel="c", event="message", action="message", data={"n": 1},
                          created_at_ms=first.created_at_ms, id=2))
    led.deliver_live(idless(first))
    assert led.recover().delivered == 1
    assert s.seen() == [1, 1]


def test_a_failed_recovery_holds_live_messages_until_one_succeeds() -> None:
    s = Store()
    led = s.ledger()
    s.persist(1)
    s.fail = True
    delivered, error = led.recover()
    assert delivered == 0 and isinstance(error, CohrtConnectionError) and led.gap_open
    led.deliver_live(s.persist(2))
    assert s.seen() == []
    s.fail = False
    assert led.recover() == (2, None)
    assert s.seen() == [1, 2] and not led.gap_open


def test_stop_abandons_the_walk() -> None:
    s = Store()
    led = s.ledger()
    for n in range(5):
        s.persist(n)
    calls = iter([False, False, True])
    assert led.recover(lambda: next(calls)).delivered == 2


def test_without_a_cursor_rows_older_than_the_subscription_are_skipped() -> None:
    s = Store()
    led = DeliveryLedger(s.history, s.emitted.append)
    led.opened_at_ms = 1002
    for n in range(4):
        s.persist(n)
    assert led.recover().delivered == 2
    assert s.seen() == [2, 3]


def test_pending_idless_messages_are_compacted_against_history(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "PENDING_COMPACT_AT", 4)
    s = Store()
    led = s.ledger()
    for n in range(4):
        led.deliver_live(idless(s.persist(n)))
    assert s.reads == 1 and led.last_id == 4
    assert s.seen() == [0, 1, 2, 3]


def test_non_persisted_streams_back_off_their_history_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "PENDING_COMPACT_AT", 4)
    s = Store()
    led = s.ledger()
    for n in range(20):
        led.deliver_live(msg(n))
    # Nothing in history: the interval doubles (4, 8, 16) instead of reading every 4.
    assert s.reads == 2 and len(s.emitted) == 20


def test_without_catch_up_idless_messages_are_not_remembered() -> None:
    s = Store()
    led = s.ledger(match_idless=False)
    for n in range(3):
        led.deliver_live(msg(n))
    assert s.reads == 0 and s.seen() == [0, 1, 2]


def test_fingerprint_is_stable_over_key_order() -> None:
    assert fingerprint("e", {"a": 1, "b": 2}, 5) == fingerprint("e", {"b": 2, "a": 1}, 5)
    assert fingerprint("e", {"a": 1}, 5) != fingerprint("e", {"a": 1}, 6)
    assert fingerprint("e", {1, 2}, 5)  # not JSON: falls back to repr
