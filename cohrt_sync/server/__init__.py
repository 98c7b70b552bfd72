"""The local, wire-compatible Realtime server (``pip install 'cohrt-sync[server]'``).

Start it from the command line with ``cohrt-sync serve``, or in-process::

    from cohrt_sync.server import LocalServer

    with LocalServer(keys=["k_dev"], provision=True) as srv:
        print(srv.base_url)
"""

from __future__ import annotations

from .app import build_app
from .config import Config
from .limits import TIERS
from .runner import LocalServer

__all__ = ["TIERS", "Config", "LocalServer", "build_app"]
