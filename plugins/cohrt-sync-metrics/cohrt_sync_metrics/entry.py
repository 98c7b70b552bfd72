"""The installed plugin (entry point ``metrics``), configured from the environment.

Imported only by a client that asks for it (``Client(entry_points=["metrics"])``);
one :class:`~cohrt_sync_metrics.Metrics` on ``prometheus_client.REGISTRY`` is
shared by every such client of the process. ``COHRT_METRICS_PORT`` serves
``/metrics`` on that port (``COHRT_METRICS_ADDR``, default ``127.0.0.1``) for
the life of the process; ``COHRT_METRICS_CHANNEL_LABEL`` is ``family``
(default), ``name`` or ``none``.
"""

from __future__ import annotations

from . import Metrics

__all__ = ["plugin"]

#: The object the ``metrics`` entry point registers.
plugin = Metrics.from_env()
