"""The server's one way to write a time on the wire: ISO-8601 UTC, milliseconds, ``Z``."""

from __future__ import annotations

import datetime


def iso_utc(ts: float) -> str:
    """``ts`` (seconds since the epoch) as e.g. ``2026-11-27T21:50:29.352Z``.

    Cloudflare's shape, used by presence's ``last_seen`` and every RealtimeKit
    time. The fraction is truncated to milliseconds, as
    ``isoformat(timespec="milliseconds")`` does, not rounded up to the next one.
    """
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
