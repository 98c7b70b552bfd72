"""The presence Roster alone."""

from __future__ import annotations

from cohrt_sync.models import User
from cohrt_sync.presence import Roster


def test_roster_diff_and_replace() -> None:
    roster = Roster()
    roster.replace([User("a"), User("b")])
    roster.add(User("c", name="C"))
    roster.remove("zz")
    assert "c" in roster and set(roster.snapshot()) == {"a", "b", "c"}
    gone, came = roster.diff([User("b"), User("d")])
    assert [u.id for u in gone] == ["a", "c"] and [u.id for u in came] == ["d"]
    roster.replace([User("b"), User("d")])
    snap = roster.snapshot()
    snap.clear()
    assert set(roster.snapshot()) == {"b", "d"}
