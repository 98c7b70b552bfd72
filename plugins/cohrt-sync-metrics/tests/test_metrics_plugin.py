"""cohrt-sync-metrics end to end: a real LocalServer, and a real scrape of ``/metrics``."""

from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

import pytest
import requests
from cohrt_sync_metrics import Metrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import cohrt_sync

FAST = cohrt_sync.Retry(total=None, backoff_factor=0.05, backoff_max=0.3, budget=None)
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]




def scrape(port: int) -> Samples:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_entry_point_metrics_scraped_over_http(
    cohrt_server: Any, cohrt_key: str, monkeypatch: pytest.MonkeyPatch, wait_for: Any
) -> None:
    monkeypatch.setenv("COHRT_METRICS_PORT", "0")  # a free port; serve() tells which

    class Broken:
        @cohrt_sync.hookimpl
        def on_message(self, message: cohrt_sync.Message) -> None:
            if message.data == {"boom": True}:
                raise RuntimeError("hook bug")

    with cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                           entry_points=["metrics"], plugins=[Broken()],
                           reconnect_backoff=FAST) as client:
        metrics = client.plugin_manager.get_plugin("metrics")
        port = metrics.serve()  # already serving from COHRT_METRICS_PORT: its port
        before = scrape(port)
        ch = client.subscribe("mtest:a", user_id="ops")
        ch.publish({"n": 1})
        client.publish("mtest:a", {"n": 2})
        ch.publish({"boom": True})
        received = "cohrt_sync_messages_received_total"
        base = value(before, received, channel="mtest")
        wait_for(lambda: value(scrape(port), received, channel="mtest") == base + 3)
        cohrt_server.drop_channel("mtest:a")
        wait_for(lambda: not ch.connected)
        client.publish("mtest:a", {"n": 3})  # missed live, recovered from history
        reconnects = "cohrt_sync_reconnects_total"
        wait_for(lambda: value(scrape(port), reconnects, channel="mtest")
                 == value(before, reconnects, channel="mtest") + 1)
        after = scrape(port)
        open_now = value(after, "cohrt_sync_channels_open", channel="mtest")
    assert open_now == 1

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(received, channel="mtest") == 4
    assert grew("cohrt_sync_messages_published_total", channel="mtest", via="socket") == 2
    assert grew("cohrt_sync_messages_published_total", channel="mtest", via="http") == 2
    assert grew("cohrt_sync_publish_latency_seconds_count", via="socket") >= 2
    assert grew("cohrt_sync_disconnects_total", channel="mtest") == 1
    assert grew("cohrt_sync_caught_up_messages_total", channel="mtest") == 1
    assert grew("cohrt_sync_errors_total", channel="mtest", error="RuntimeError") == 1
    # Live messages only: the caught-up one would measure the outage, not the dispatcher.
    assert grew("cohrt_sync_dispatch_lag_seconds_count", channel="mtest") == 3
    assert value(scrape(port), "cohrt_sync_channels_open", channel="mtest") == 0
    metrics.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert not [t for t in threading.enumerate() if t.name == "cohrt-sync-metrics-http"]


def test_dispatcher_backlog_is_read_at_scrape_time(
    cohrt_server: Any, cohrt_key: str, wait_for: Any
) -> None:
    metrics = Metrics(CollectorRegistry(), channel_label=str)
    port = metrics.serve()
    release, entered = threading.Event(), threading.Event()

    class Slow:
        @cohrt_sync.hookimpl
        def on_message(self) -> None:
            entered.set()
            release.wait(5)

    try:
        with cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                               plugins=[metrics, Slow()]) as client:
            client.subscribe("mtest:slow", user_id="ops")
            for n in range(4):
                client.publish("mtest:slow", {"n": n})
            assert entered.wait(5)
            depth = "cohrt_sync_dispatcher_queue_depth"
            wait_for(lambda: value(scrape(port), depth, channel="mtest:slow") == 3)
            release.set()
            wait_for(lambda: value(scrape(port), depth, channel="mtest:slow") == 0)
    finally:
        release.set()
        metrics.close()


def test_two_plugins_share_one_registry_and_bad_settings_are_named() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    Metrics(registry)  # would raise "Duplicated timeseries" if each made its own metrics
    with pytest.raises(ValueError, match="COHRT_METRICS_CHANNEL_LABEL"):
        Metrics.from_env({"COHRT_METRICS_CHANNEL_LABEL": "full"})
    with pytest.raises(ValueError, match="COHRT_METRICS_PORT"):
        Metrics.from_env({"COHRT_METRICS_PORT": "http"})
