"""A quiet channel's dispatcher thread ends after ``dispatch_idle``; the next frame starts one."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from typing import Any, List, Tuple

import pytest

import cohrt_sync
from cohrt_sync.dispatcher import Dispatcher

from .conftest import KEY, Recorder, client_threads, wait_until


class ThreadOfEachMessage:
    """Records which thread ran each on_message."""

    def __init__(self) -> None:
        self.seen: List[Tuple[Any, threading.Thread]] = []

    @cohrt_sync.hookimpl
    def on_message(self, message: cohrt_sync.Message) -> None:
        self.seen.append((message.data, threading.current_thread()))


def _threads_of(ch: cohrt_sync.Channel) -> List[str]:
    tag = ch.name
    return sorted(t.name.split("-")[2] for t in client_threads() if tag in t.name)


class WhereClosed:
    """Records the name of each thread ``on_closed`` is called on."""

    def __init__(self) -> None:
        self.threads: List[str] = []

    @cohrt_sync.hookimpl
    def on_closed(self) -> None:
        self.threads.append(threading.current_thread().name)


def test_a_quiet_channel_keeps_one_thread_and_its_next_message_starts_another(
    server: Any, make_client: Any, channel_name: str
) -> None:
    threads = ThreadOfEachMessage()
    ch = make_client(server, plugins=[threads], dispatch_idle=0.1).subscribe(channel_name, "u")
    wait_until(lambda: ch._inbox.parked)
    assert _threads_of(ch) == ["reader"]
    assert ch._dispatcher.thread is None
    for spell in range(3):
        for n in range(3):
            ch.publish({"spell": spell, "n": n})
        expected = 3 * (spell + 1)
        wait_until(lambda: len(threads.seen) == expected)  # noqa: B023 - used at once
        wait_until(lambda: ch._inbox.parked)
        assert _threads_of(ch) == ["reader"]
    # Every message once, in order; each quiet spell's messages on one thread,
    # named as the channel's dispatcher, and a new one after each spell.
    assert [data for data, _ in threads.seen] == [
        {"spell": s, "n": n} for s in range(3) for n in range(3)
    ]
    by_spell = [{id(t) for _, t in threads.seen[i:i + 3]} for i in (0, 3, 6)]
    assert all(len(ids) == 1 for ids in by_spell)
    assert len(set.union(*by_spell)) == 3
    assert all(t.name.startswith("cohrt-sync-dispatch-chat:") for _, t in threads.seen)


def test_close_while_parked_calls_on_closed_once_on_a_dispatcher_thread(
    server: Any, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    where = WhereClosed()
    client = make_client(server, plugins=[recorder, where], dispatch_idle=0.05)
    ch = client.subscribe(channel_name, "u")
    wait_until(lambda: ch._inbox.parked)
    ch.close()
    assert ch.closed and len(recorder.of("closed")) == 1
    assert len(where.threads) == 1 and where.threads[0].startswith("cohrt-sync-dispatch-")
    assert not _threads_of(ch)


def test_without_dispatch_idle_the_thread_stays(
    server: Any, make_client: Any, channel_name: str
) -> None:
    parks = make_client(server, dispatch_idle=0.05).subscribe(f"{channel_name}-a", "u")
    stays = make_client(server, dispatch_idle=None).subscribe(f"{channel_name}-b", "u")
    wait_until(lambda: parks._inbox.parked)
    assert _threads_of(parks) == ["reader"]
    assert _threads_of(stays) == ["dispatch", "reader"] and not stays._inbox.parked


@pytest.mark.parametrize("bad", [0, -1, True, "5", float("inf"), float("nan"), 86_401])
def test_dispatch_idle_is_checked_before_any_network(bad: Any) -> None:
    with pytest.raises(cohrt_sync.BadRequestError, match="dispatch_idle"):
        cohrt_sync.Client(key=KEY, base_url="http://127.0.0.1:9", dispatch_idle=bad)


@pytest.mark.parametrize("good", [None, 0.001, 5, 86_400])
def test_dispatch_idle_takes_none_or_seconds_up_to_a_day(good: Any) -> None:
    cohrt_sync.Client(key=KEY, base_url="http://127.0.0.1:9", dispatch_idle=good).close()


def test_where_no_thread_can_start_a_parked_channel_closes_on_the_closing_thread(
    server: Any, make_client: Any, recorder: Recorder, channel_name: str,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Python 3.12 refuses new threads at interpreter exit, where the atexit
    # handler closes forgotten clients: Thread.start() raises this there.
    where = WhereClosed()
    client = make_client(server, plugins=[recorder, where], dispatch_idle=0.05)
    ch = client.subscribe(channel_name, "u")
    wait_until(lambda: ch._inbox.parked)

    original = Dispatcher.start

    def refuse(self: Dispatcher) -> None:
        if self is not ch._dispatcher:
            return original(self)
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(Dispatcher, "start", refuse)
    caplog.set_level(logging.DEBUG, logger="cohrt_sync.channel")
    ch.close()
    assert where.threads == [threading.current_thread().name]
    assert len(recorder.of("closed")) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not _threads_of(ch)
    # A frame put later (the reader's last words) starts nothing and calls nothing twice.
    ch._inbox.put(("error", "late"))
    assert ch._inbox.parked and len(recorder.of("closed")) == 1


_FORGOTTEN = """
import sys, threading, time
import cohrt_sync

class Closed:
    @cohrt_sync.hookimpl
    def on_closed(self, channel):
        print("on_closed", channel.name, flush=True)

client = cohrt_sync.Client(key=sys.argv[2], base_url=sys.argv[1], plugins=[Closed()],
                           dispatch_idle=0.05)
ch = client.subscribe("forgotten:" + sys.argv[3], user_id="u")
deadline = time.monotonic() + 10
while not ch._inbox.parked and time.monotonic() < deadline:
    time.sleep(0.01)
print("parked", ch._inbox.parked, flush=True)
# Never closed: the atexit handler closes it.
"""


def test_a_forgotten_client_with_parked_channels_runs_on_closed_at_exit(
    server: Any, channel_name: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FORGOTTEN, server.base_url, KEY, channel_name],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["parked True", f"on_closed forgotten:{channel_name}"]
    assert "Traceback" not in out.stderr and "ERROR" not in out.stderr, out.stderr[-2000:]
