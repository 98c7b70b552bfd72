"""cohrt_sync: a synchronous, thread-based client for the Cohesivity Realtime API.

The client half (``cohrt_sync.Client``) needs only ``requests``,
``websocket-client``, ``attrs`` and ``pluggy``. The local, wire-compatible
server lives in :mod:`cohrt_sync.server` and needs the ``server`` extra.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
