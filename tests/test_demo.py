"""`cohrt-sync demo` walks the whole API and says so."""

from __future__ import annotations

import io
import threading

from cohrt_sync.demo import run_demo


def test_demo_runs_every_step_and_leaves_no_threads() -> None:
    before = {t.ident for t in threading.enumerate()}
    out = io.StringIO()
    assert run_demo(out=out, rtk_delay_ms=50) == 0
    text = out.getvalue()
    for title in (
        "1. Provision",
        "2. Presence",
        "3. Chat",
        "4. Typing",
        "5. The DM pattern",
        "6. A dropped connection",
        "7. Direct SQL",
        "8. RealtimeKit",
        "9. Goodbye",
    ):
        assert f"== {title}" in text
    assert "realtime provisioned in write region weur" in text
    assert "dm_channel('alice', 'bob') == 'dm:alice_bob'" in text
    assert "history keeps only persisted events: ['message', 'message']" in text
    assert "chat:room_42     5 persisted message(s)" in text
    # Each of the three missed messages reached each user exactly once.
    for i in (1, 2, 3):
        for who in ("alice", "bob"):
            line = f"[{who:<5}] chat:room_42     message    {{'text': 'build #{i} finished'}}"
            assert text.count(line) == 1, (who, i)
    assert "participant token: eyJ" in text
    leaked = [t.name for t in threading.enumerate() if t.ident not in before]
    assert leaked == []
