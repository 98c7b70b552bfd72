"""The local, wire-compatible Realtime server (``pip install 'cohrt-sync[server]'``).

Start it from the command line with ``cohrt-sync serve``, or in-process::

    from cohrt_sync.server import LocalServer

    with LocalServer(keys=["k_dev"], provision=True) as srv:
        print(srv.base_url)

The names below are imported on first use (PEP 562), so that
:mod:`cohrt_sync.server.config`, the settings and their defaults, can be read
without aiohttp: the command line builds ``serve``'s flags from it and
should not pay for the server's imports on every ``cohrt-sync publish``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import build_app
    from .config import Config
    from .limits import TIERS
    from .runner import LocalServer

__all__ = ["TIERS", "Config", "LocalServer", "build_app"]

_HOMES = {"TIERS": ".limits", "Config": ".config", "LocalServer": ".runner", "build_app": ".app"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
