"""A plugin an app registers at start-up: counts the HTTP publishes its client makes.

The sites here import it as ``publish_counter`` (their servers run with this
directory on ``PYTHONPATH``); the Flask and Django tests as
``tests.servers.publish_counter``.
"""

from __future__ import annotations

from typing import Any

import cohrt_sync


class PublishCounter:
    """Counts ``on_published`` calls: the HTTP publishes of the process's client."""

    def __init__(self) -> None:
        self.published = 0

    @cohrt_sync.hookimpl
    def on_published(self, channel: Any, ack: Any, seconds: float) -> None:
        self.published += 1
