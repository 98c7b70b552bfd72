"""The history page check: what a page may hold, what is dropped, and what is kept in order."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import cohrt_sync
from cohrt_sync import _answers

CONTEXT = "history of 'c' (GET /edge/realtime/history)"


def _row(msg_id: Any, channel: str = "c", **extra: Any) -> Dict[str, Any]:
    return {"id": msg_id, "channel": channel, "event": "message", "action": "message",
            "data": {"id": msg_id}, "created_at_ms": 1, **extra}


def _check(items: List[Any], after: int = 10) -> cohrt_sync.HistoryPageError:
    with pytest.raises(cohrt_sync.HistoryPageError) as info:
        _answers.history_page({"messages": items}, CONTEXT, "c", after)
    assert info.value.served == len(items)
    assert CONTEXT in str(info.value)
    return info.value


def test_a_page_that_keeps_the_promise_is_returned_as_it_came() -> None:
    page = _answers.history_page({"messages": [_row(11), _row(15)]}, CONTEXT, "c", 10)
    assert [m.id for m in page] == [11, 15]


@pytest.mark.parametrize(
    ("items", "kind", "kept"),
    [
        ([_row(10), _row(11)], _answers.CURSOR_ROW, [11]),
        ([_row(3), _row(11)], _answers.BELOW_CURSOR, [11]),
        ([_row(13), _row(12), _row(11)], _answers.OUT_OF_ORDER, [11, 12, 13]),
        ([_row(11), _row(12), _row(12)], _answers.REPEATED_ID, [11, 12]),
        ([_row(11), _row(12, "other")], _answers.OTHER_CHANNEL, [11]),
        ([_row(11), "junk", None], _answers.NOT_A_MESSAGE, [11]),
        ([_row(11), {"id": 12}], _answers.NOT_A_MESSAGE, [11]),
        ([_row(11), _row("12"), _row(True), _row(12.0)], _answers.NO_INTEGER_ID, [11]),
        ([_row(11), _row(12, event=5)], _answers.BAD_EVENT, [11]),
        ([_row(11), _row(12, created_at_ms=float("inf")), _row(2**64)], _answers.BAD_NUMBER,
         [11]),
    ],
    ids=["cursor-row", "below-cursor", "out-of-order", "repeated", "other-channel",
         "not-an-object", "no-data", "no-integer-id", "event-not-a-string", "out-of-range"],
)
def test_each_kind_of_broken_item_is_dropped_and_named(
    items: List[Any], kind: str, kept: List[int]
) -> None:
    err = _check(items)
    assert list(err.problems) == [kind]
    assert [m.id for m in err.messages] == kept


def test_a_page_with_many_problems_names_each_once_in_the_order_found() -> None:
    err = _check([_row(10), _row(9), _row(14), _row(12), _row(13, "x"), _row(12)])
    assert list(err.problems) == [
        _answers.CURSOR_ROW, _answers.BELOW_CURSOR, _answers.OUT_OF_ORDER,
        _answers.OTHER_CHANNEL, _answers.REPEATED_ID,
    ]
    assert [m.id for m in err.messages] == [12, 14]


@pytest.mark.parametrize("raw", [None, [], {"messages": None}, {"messages": {"a": 1}}])
def test_an_answer_that_is_no_page_at_all_is_refused_whole(raw: Any) -> None:
    with pytest.raises(cohrt_sync.ProtocolError) as info:
        _answers.history_page(raw, CONTEXT, "c", 0)
    assert not isinstance(info.value, cohrt_sync.HistoryPageError)
