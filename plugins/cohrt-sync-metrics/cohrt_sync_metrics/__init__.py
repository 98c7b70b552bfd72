"""cohrt-sync-metrics: Prometheus metrics for cohrt_sync clients, through ``prometheus_client``.

Register a :class:`Metrics` (``Client(plugins=[Metrics()])``) or load the
installed one (``Client(entry_points=["metrics"])``, configured by
``COHRT_METRICS_*`` variables). The metrics live in a
``prometheus_client`` registry (the default one unless told otherwise);
expose them the usual way or with :meth:`Metrics.serve`.

Channel names can be unbounded (``dm:3_17`` …), so the ``channel`` label is
the channel's *family* (the part before the first ``:``) by default; pass
``channel_label=str`` to label by full name when the set of channels is small.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

import cohrt_sync

__all__ = ["LABELLERS", "Metrics", "channel_family"]

__version__ = "0.1.0"

log = logging.getLogger("cohrt_sync_metrics")


def channel_family(name: str) -> str:
    """``"chat:room_42"`` → ``"chat"``: a bounded label for an unbounded set of channels.

    :param name: the channel name.
    """
    return name.split(":", 1)[0]


#: The ``COHRT_METRICS_CHANNEL_LABEL`` choices.
LABELLERS: Dict[str, Callable[[str], str]] = {
    "family": channel_family,
    "name": str,
    "none": lambda name: "",
}

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Backlog(Collector):
    """Reads each open channel's ``queue_depth`` at scrape time (nothing to keep up to date)."""

    def __init__(self) -> None:
        self.channels: Dict[int, Tuple[Any, Callable[[str], str]]] = {}
        self.lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "cohrt_sync_dispatcher_queue_depth",
            "Frames received and not yet dispatched to hooks, summed over open channels",
            labels=["channel"],
        )
        opened = GaugeMetricFamily(
            "cohrt_sync_channels_open", "Channels subscribed and not closed", labels=["channel"]
        )
        totals: Dict[str, Tuple[int, int]] = {}
        with self.lock:
            channels = list(self.channels.values())
        for ref, label in channels:
            channel = ref()
            if channel is None:
                continue
            key = label(channel.name)
            queued, count = totals.get(key, (0, 0))
            totals[key] = (queued + channel.queue_depth, count + 1)
        for key, (queued, count) in sorted(totals.items()):
            depth.add_metric([key], queued)
            opened.add_metric([key], count)
        yield depth
        yield opened


class _Families:
    """The metric objects of one registry, shared by every :class:`Metrics` on it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        kw: Dict[str, Any] = {"registry": registry}
        self.received = prometheus_client.Counter(
            "cohrt_sync_messages_received", "Publications delivered to on_message "
            "(live and caught up)", ["channel"], **kw)
        self.published = prometheus_client.Counter(
            "cohrt_sync_messages_published", "Publishes acknowledged by the server",
            ["channel", "via"], **kw)
        self.publish_latency = prometheus_client.Histogram(
            "cohrt_sync_publish_latency_seconds", "From sending a publish to its ack",
            ["via"], buckets=_LATENCY_BUCKETS, **kw)
        self.lag = prometheus_client.Histogram(
            "cohrt_sync_dispatch_lag_seconds", "From a live message's server timestamp to its "
            "on_message call (network, reader and dispatcher queue)", ["channel"],
            buckets=_LATENCY_BUCKETS, **kw)
        self.disconnects = prometheus_client.Counter(
            "cohrt_sync_disconnects", "Sockets lost (a reconnect follows)", ["channel"], **kw)
        self.reconnects = prometheus_client.Counter(
            "cohrt_sync_reconnects", "Channels subscribed again after a drop", ["channel"], **kw)
        self.caught_up = prometheus_client.Counter(
            "cohrt_sync_caught_up_messages", "Messages recovered from history after a drop",
            ["channel"], **kw)
        self.errors = prometheus_client.Counter(
            "cohrt_sync_errors", "Errors a channel survived (on_error): a hook that raised is "
            "counted under its exception type", ["channel", "error"], **kw)
        self.backlog = _Backlog()
        registry.register(self.backlog)


_families_lock = threading.Lock()
_families: Dict[int, Tuple[CollectorRegistry, _Families]] = {}


def _families_for(registry: CollectorRegistry) -> _Families:
    with _families_lock:
        if id(registry) not in _families:
            _families[id(registry)] = (registry, _Families(registry))
        return _families[id(registry)][1]


class Metrics:
    """A plugin recording Prometheus metrics of every client it is registered with.

    Several :class:`Metrics` on one registry share its metrics (a registry
    refuses a name twice), so one per process is enough.

    :param registry: where the metrics live (default ``prometheus_client.REGISTRY``).
    :param channel_label: maps a channel name to its ``channel`` label value
        (default :func:`channel_family`).
    """

    def __init__(
        self,
        registry: CollectorRegistry = prometheus_client.REGISTRY,
        *,
        channel_label: Callable[[str], str] = channel_family,
    ) -> None:
        self.registry = registry
        self.channel_label = channel_label
        self._m = _families_for(registry)
        self._recovering: weakref.WeakSet[Any] = weakref.WeakSet()
        self._server: Optional[Tuple[Any, threading.Thread]] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Metrics:
        """Build from ``COHRT_METRICS_*``, serving when ``COHRT_METRICS_PORT`` is set.

        ``COHRT_METRICS_CHANNEL_LABEL`` is ``family`` (default), ``name`` or
        ``none``; ``COHRT_METRICS_ADDR`` defaults to ``127.0.0.1``.

        :param env: the environment to read (default ``os.environ``).
        :raises ValueError: a bad variable, named.
        :raises OSError: the port is taken.
        """
        env = os.environ if env is None else env
        label = env.get("COHRT_METRICS_CHANNEL_LABEL", "family")
        if label not in LABELLERS:
            raise ValueError(
                f"COHRT_METRICS_CHANNEL_LABEL must be one of {sorted(LABELLERS)}, not {label!r}"
            )
        metrics = cls(channel_label=LABELLERS[label])
        port = env.get("COHRT_METRICS_PORT")
        if port:
            if not port.isdigit():
                raise ValueError(f"COHRT_METRICS_PORT must be a port number, not {port!r}")
            metrics.serve(int(port), env.get("COHRT_METRICS_ADDR", "127.0.0.1"))
        return metrics

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on a thread (``cohrt-sync-metrics-http``) until :meth:`close`.

        :param port: the port (0: a free one).
        :param addr: the address to listen on (loopback by default).
        :returns: the port listened on.
        :raises OSError: the port is taken.
        """
        if self._server is None:
            server, thread = prometheus_client.start_http_server(port, addr, self.registry)
            thread.name = "cohrt-sync-metrics-http"
            self._server = (server, thread)
        return int(self._server[0].server_address[1])

    def close(self, timeout: float = 2.0) -> None:
        """Stop serving (if :meth:`serve` was called) and join its thread.

        :param timeout: seconds to wait for the thread.
        """
        if self._server is None:
            return
        (server, thread), self._server = self._server, None
        server.shutdown()
        server.server_close()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("thread %s still running after close()", thread.name)

    def _label(self, name: str) -> str:
        return self.channel_label(name)

    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        """Start reading the channel's dispatcher backlog."""
        backlog = self._m.backlog
        with backlog.lock:
            backlog.channels[id(channel)] = (weakref.ref(channel), self.channel_label)

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        """Stop reading it."""
        backlog = self._m.backlog
        with backlog.lock:
            backlog.channels.pop(id(channel), None)

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: cohrt_sync.Message) -> None:
        """Count a message in; observe the lag of a live one."""
        label = self._label(channel.name)
        self._m.received.labels(label).inc()
        if message.created_at_ms is not None and channel not in self._recovering:
            lag = time.time() - message.created_at_ms / 1000.0
            self._m.lag.labels(label).observe(max(0.0, lag))

    @cohrt_sync.hookimpl
    def on_published(self, channel: Any, ack: cohrt_sync.PublishAck, seconds: float) -> None:
        """Count a message out and observe its ack latency."""
        via = "http" if channel is None else "socket"
        self._m.published.labels(self._label(ack.channel), via).inc()
        self._m.publish_latency.labels(via).observe(seconds)

    @cohrt_sync.hookimpl
    def on_disconnected(self, channel: Any) -> None:
        """Count a drop; messages until the reconnect are catch-up, not live."""
        self._recovering.add(channel)
        self._m.disconnects.labels(self._label(channel.name)).inc()

    @cohrt_sync.hookimpl
    def on_reconnected(self, channel: Any, caught_up: int) -> None:
        """Count a reconnect and what it caught up."""
        self._recovering.discard(channel)
        label = self._label(channel.name)
        self._m.reconnects.labels(label).inc()
        self._m.caught_up.labels(label).inc(caught_up)

    @cohrt_sync.hookimpl
    def on_error(self, channel: Any, error: BaseException) -> None:
        """Count an error by its exception type."""
        self._m.errors.labels(self._label(channel.name), type(error).__name__).inc()
