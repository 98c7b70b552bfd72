"""cohrt-sync-echo: an example plugin distribution for cohrt_sync.

Installed, it registers through the ``cohrt_sync`` entry-point group and
answers every ``echo_request`` publication on any subscribed channel with an
``echo`` publication (``{"echo": <data>}``, not persisted), over the same
socket. It shows the smallest useful plugin: a module with hook functions.
"""

from __future__ import annotations

import logging
from typing import Any

import cohrt_sync

log = logging.getLogger(__name__)


@cohrt_sync.hookimpl
def on_message(channel: Any, message: Any) -> None:
    """Answer ``echo_request`` with ``echo`` on the same channel."""
    if message.event != "echo_request":
        return
    try:
        # Publishing from a hook is safe: acks are settled by the reader thread.
        channel.publish({"echo": message.data}, event="echo", persist=False)
    except cohrt_sync.CohrtError as e:
        log.warning("echo on %s failed: %s", channel.name, e)
