"""The presence Roster alone: the one place presence changes, and which changes are news."""

from __future__ import annotations

from cohrt_sync.models import User
from cohrt_sync.presence import Roster


def test_roster_diff_and_replace() -> None:
    roster = Roster()
    roster.replace([User("a"), User("b")])
    assert roster.join(User("c", name="C"))
    assert not roster.leave("zz")
    assert "c" in roster and set(roster.snapshot()) == {"a", "b", "c"}
    gone, came = roster.diff([User("b"), User("d")])
    assert [u.id for u in gone] == ["a", "c"] and [u.id for u in came] == ["d"]
    roster.replace([User("b"), User("d")])
    snap = roster.snapshot()
    snap.clear()
    assert set(roster.snapshot()) == {"b", "d"}


def test_roster_decides_which_joins_and_leaves_are_news() -> None:
    roster = Roster()
    roster.replace([User("a", name="old")])
    # A join of someone present refreshes their entry and is not news (no on_join).
    assert not roster.join(User("a", name="new"))
    assert roster.snapshot()["a"].name == "new"
    assert roster.join(User("b"))
    # A leave is news only for someone present (on_leave once, never for a stranger).
    assert roster.leave("b")
    assert not roster.leave("b")
    assert set(roster.snapshot()) == {"a"}
