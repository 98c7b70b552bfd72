"""What plugins can see of publishing and dispatch: ``on_published`` and ``Channel.queue_depth``."""

from __future__ import annotations

import threading
from typing import Any

import cohrt_sync

from .conftest import Recorder, wait_until


def test_on_published_fires_for_socket_and_http_publishes(
    server: Any, make_client: Any, channel_name: str
) -> None:
    rec = Recorder()
    client = make_client(server, plugins=[rec])
    ch = client.subscribe(channel_name, user_id="pub")
    ack = ch.publish({"n": 1})
    http_ack = client.publish(channel_name, {"n": 2}, persist=False)
    published = rec.of("published")
    assert [(e[1], e[2]) for e in published] == [(ch, ack), (None, http_ack)]
    assert all(0 < e[3] < 10 for e in published)
    assert published[1][2].channel == channel_name


def test_a_failing_on_published_does_not_fail_the_publish(
    server: Any, make_client: Any, channel_name: str
) -> None:
    class Broken:
        @cohrt_sync.hookimpl
        def on_published(self, ack: Any) -> None:
            raise RuntimeError("metrics bug")

    rec = Recorder()
    client = make_client(server, plugins=[Broken(), rec])
    ch = client.subscribe(channel_name, user_id="pub")
    assert ch.publish({"n": 1}).channel == channel_name
    assert client.publish(channel_name, {"n": 2}).channel == channel_name
    rec.wait_for(lambda: rec.of("error"))  # the socket path reports to on_error


def test_queue_depth_counts_frames_waiting_for_a_busy_dispatcher(
    server: Any, make_client: Any, channel_name: str
) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Slow:
        @cohrt_sync.hookimpl
        def on_message(self, message: Any) -> None:
            entered.set()
            release.wait(5)

    client = make_client(server, plugins=[Slow()])
    ch = client.subscribe(channel_name, user_id="slow")
    assert ch.queue_depth == 0
    try:
        for n in range(4):
            client.publish(channel_name, {"n": n})
        assert entered.wait(5)
        # The first message is in the hook; the other three wait in the inbox.
        wait_until(lambda: ch.queue_depth == 3, timeout=5)
    finally:
        release.set()
    wait_until(lambda: ch.queue_depth == 0, timeout=5)
