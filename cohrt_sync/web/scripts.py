"""The browser client's files, served as they are by every adapter.

``cohrt-sync.js`` is an ES module (``subscribe``, presence, publish,
reconnect, catch-up); it imports ``cohrt-sync-delivery.js``, the browser's
exactly-once ledger. Both live in ``cohrt_sync/web/static/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ["CONTENT_TYPE", "MAX_AGE", "SCRIPTS", "STATIC", "script_path"]

#: Where the files are.
STATIC = Path(__file__).resolve().parent / "static"

#: The files a route serves, and nothing else from that folder.
SCRIPTS = ("cohrt-sync.js", "cohrt-sync-delivery.js")

#: Their media type (an ES module must be served as JavaScript).
CONTENT_TYPE = "text/javascript"

#: Seconds a browser may keep them.
MAX_AGE = 300


def script_path(name: str) -> Optional[Path]:
    """The file of the script ``name``, or None when it is not one of :data:`SCRIPTS`.

    :param name: the last part of the requested URL.
    """
    return STATIC / name if name in SCRIPTS else None
