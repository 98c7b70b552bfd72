"""cohrt-sync-journal end to end: loaded by entry-point name into a client on a real LocalServer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import cohrt_sync_journal
import pytest
from cohrt_sync_journal import Journal, read, replay

import cohrt_sync

from_env = Journal.from_env

FAST = cohrt_sync.Retry(total=None, backoff_factor=0.05, backoff_max=0.3, budget=None)




def kinds(path: Path) -> List[str]:
    return [r["kind"] for r in read(path)]


def test_entry_point_journal_records_a_session_with_a_drop_and_catch_up(
    cohrt_server: Any, cohrt_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    wait_for: Any,
) -> None:
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("COHRT_JOURNAL_PATH", str(path))
    with cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                           entry_points=["journal"], reconnect_backoff=FAST) as client:
        assert isinstance(client.plugin_manager.get_plugin("journal"), Journal)
        ch = client.subscribe("chat:journal", user_id="auditor")
        ch.publish({"n": 1})
        wait_for(lambda: "message" in kinds(path))
        cohrt_server.drop_channel("chat:journal")
        wait_for(lambda: "disconnected" in kinds(path))
        client.publish("chat:journal", {"n": 2})  # while it reconnects: caught up from history
        wait_for(lambda: "reconnected" in kinds(path))
        wait_for(lambda: len([r for r in read(path) if r["kind"] == "message"]) == 2)
    records = list(read(path))
    assert records[0]["kind"] == "connected" and records[-1]["kind"] == "closed"
    messages = [r["message"]["data"] for r in records if r["kind"] == "message"]
    assert messages == [{"n": 1}, {"n": 2}]
    vias = sorted(r["via"] for r in records if r["kind"] == "published")
    assert vias == ["http", "socket"]
    assert all(line.startswith("{") for line in path.read_text().splitlines())


def test_sqlite_journal_rotates_by_size_and_reads_back_in_order(
    cohrt_server: Any, cohrt_key: str, tmp_path: Path, wait_for: Any
) -> None:
    path = tmp_path / "audit.db"
    journal = Journal(path, rotate_bytes=16 * 1024, kinds=["message"])
    written: List[int] = []

    class Count:  # registered after the journal, so it runs once the journal wrote
        @cohrt_sync.hookimpl(trylast=True)
        def on_message(self, message: cohrt_sync.Message) -> None:
            written.append(message.data["n"])

    with cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                           plugins=[journal, Count()]) as client:
        ch = client.subscribe("chat:journal-sqlite", user_id="auditor")
        for n in range(60):
            ch.publish({"n": n, "pad": "x" * 400})
        wait_for(lambda: len(written) == 60)
    journal.close()
    files = sorted(tmp_path.glob("audit.*.db"))
    assert len(files) >= 2, files  # 60 records of ~0.5 kB past a 16 kB limit
    assert [r["message"]["data"]["n"] for r in read(path)] == list(range(60))


def test_daily_rotation_names_files_by_the_day_they_cover(tmp_path: Path) -> None:
    day = 86400.0
    now = [1_700_000_000.0]
    journal = Journal(tmp_path / "j.jsonl", rotate_daily=True, clock=lambda: now[0])
    journal.write("message", "c", n=1)
    journal.write("message", "c", n=2)
    now[0] += day
    journal.write("message", "c", n=3)
    journal.close()
    rotated = sorted(p.name for p in tmp_path.glob("j.*.jsonl"))
    assert rotated == ["j.2023-11-14.0001.jsonl"]
    assert [r["n"] for r in read(tmp_path / "j.jsonl")] == [1, 2, 3]
    assert [json.loads(x)["n"] for x in (tmp_path / "j.jsonl").read_text().splitlines()] == [3]


def test_replay_feeds_recorded_messages_and_presence_to_another_plugin(
    cohrt_server: Any, cohrt_key: str, tmp_path: Path, wait_for: Any
) -> None:
    journal = Journal(tmp_path / "r.jsonl")
    seen: List[Any] = []

    class Legacy:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: cohrt_sync.Message) -> None:
            seen.append(("message", channel.name, message))

        @cohrt_sync.hookimpl
        def on_join(self, channel: Any, user: cohrt_sync.User) -> None:
            seen.append(("join", channel.name, user))

        @cohrt_sync.hookimpl
        def on_leave(self, channel: Any, user: cohrt_sync.User, last_seen: Any) -> None:
            seen.append(("leave", channel.name, user, last_seen))

    live: List[cohrt_sync.Message] = []

    class Keep:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            live.append(message)

    base = dict(key=cohrt_key, base_url=cohrt_server.base_url)
    with cohrt_sync.Client(**base, plugins=[journal, Keep()]) as a, cohrt_sync.Client(**base) as b:
        ch = a.subscribe("chat:replay", user_id="a")
        b.subscribe("chat:replay", user_id="b", name="Bea")
        ch.publish({"text": "hello"})
        wait_for(lambda: len(live) == 1)
        b.close()
        wait_for(lambda: "leave" in kinds(tmp_path / "r.jsonl"))
    journal.close()
    assert replay(tmp_path / "r.jsonl", Legacy()) == 3
    bea = cohrt_sync.User("b", "Bea")
    assert [s[:3] for s in seen] == [
        ("join", "chat:replay", bea), ("message", "chat:replay", live[0]),
        ("leave", "chat:replay", bea),
    ]
    assert seen[2][3]  # the recorded last_seen
    with pytest.raises(cohrt_sync.ChannelClosedError, match="replay"):
        cohrt_sync_journal.ReplayedChannel("chat:replay").publish({})


def test_env_configuration_errors_say_which_variable() -> None:
    with pytest.raises(ValueError, match="COHRT_JOURNAL_PATH"):
        from_env({})
    with pytest.raises(ValueError, match="COHRT_JOURNAL_ROTATE_BYTES"):
        from_env({"COHRT_JOURNAL_PATH": "j.jsonl", "COHRT_JOURNAL_ROTATE_BYTES": "1MB"})
    with pytest.raises(ValueError, match="unknown journal kinds"):
        from_env({"COHRT_JOURNAL_PATH": "j.jsonl", "COHRT_JOURNAL_KINDS": "mesage"})
    j = from_env({"COHRT_JOURNAL_PATH": "j.db", "COHRT_JOURNAL_ROTATE_DAILY": "1"})
    assert repr(j) == "<Journal 'j.db'>" and j.kinds == cohrt_sync_journal.KINDS


def test_an_unconfigured_entry_point_stops_the_client_with_one_line(tmp_path: Path) -> None:
    # A fresh process: this one may have imported the entry point already.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHRT_JOURNAL_")}
    code = ("import cohrt_sync; cohrt_sync.Client(key='k', base_url='http://127.0.0.1:9', "
            "entry_points=['journal'])")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=30, cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "ImportError: cohrt_sync plugin 'journal' could not be loaded: set COHRT_JOURNAL_PATH to "
        "the journal file, or pass cohrt_sync_journal.Journal(path) in Client(plugins=[...])"
    )
