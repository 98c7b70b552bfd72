"""The spec's launch rate limits, per tier ("Launch Rate Limits").

Per-minute limits answer 429 with ``Retry-After``. Monthly caps of the claimed
tiers answer 429 until the month turns (UTC). The ephemeral tier's lifetime
caps pause the whole tenant, as the spec says: every later edge request gets
403 ``FAILED_PRECONDITION``.
"""

from __future__ import annotations

import calendar
import collections
import math
import time
from typing import Callable, Deque, Dict, Optional, Tuple

import attrs

from .errors import ApiError
from .state import Tenant

MINT = "token mints"
PUBLISH = "published messages"
HISTORY = "history reads"
REQUEST = "requests"
RTK_PARTICIPANT = "participant tokens"


@attrs.frozen
class Tier:
    """The caps of one tier; None means no cap."""

    name: str
    sockets: Optional[int] = None
    per_minute: Dict[str, int] = attrs.field(factory=dict)
    monthly: Dict[str, int] = attrs.field(factory=dict)
    lifetime: Dict[str, int] = attrs.field(factory=dict)


TIERS: Dict[str, Tier] = {
    "unlimited": Tier("unlimited"),
    "ephemeral": Tier(
        "ephemeral",
        sockets=5,
        per_minute={REQUEST: 30, MINT: 5},
        lifetime={MINT: 100, PUBLISH: 25_000, HISTORY: 2_500, RTK_PARTICIPANT: 10},
    ),
    "free": Tier(
        "free",
        sockets=50,
        per_minute={REQUEST: 120, MINT: 30},
        monthly={MINT: 5_000, PUBLISH: 500_000, HISTORY: 25_000},
    ),
    "plus": Tier(
        "plus",
        sockets=500,
        per_minute={REQUEST: 600, MINT: 150},
        monthly={MINT: 50_000, PUBLISH: 5_000_000, HISTORY: 250_000},
    ),
    "pro": Tier(
        "pro",
        sockets=2_500,
        per_minute={REQUEST: 3_000, MINT: 750},
        monthly={MINT: 250_000, PUBLISH: 25_000_000, HISTORY: 1_250_000},
    ),
}


class Limiter:
    """Counts usage per tenant and refuses what the tier does not allow.

    :param tier: one of :data:`TIERS`.
    :param clock: the server's clock (seconds since the epoch).
    """

    def __init__(self, tier: str, clock: Callable[[], float] = time.time) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; choose from {', '.join(TIERS)}")
        self.tier = TIERS[tier]
        self._clock = clock
        self._windows: Dict[Tuple[str, str], Deque[float]] = collections.defaultdict(
            collections.deque
        )
        #: Tenants whose counters changed since the last flush.
        self.dirty: Dict[str, Tenant] = {}

    def check_paused(self, tenant: Tenant) -> None:
        """Refuse every edge call of a paused tenant."""
        if tenant.paused:
            raise ApiError(403, "tenant is paused: an ephemeral hard cap was exceeded")

    def take(self, tenant: Tenant, what: str, n: int = 1) -> None:
        """Count ``n`` of ``what`` for ``tenant``, or raise the tier's refusal."""
        tier = self.tier
        if not (tier.per_minute or tier.monthly or tier.lifetime):
            return
        now = self._clock()
        limit = tier.per_minute.get(what)
        if limit is not None:
            window = self._windows[(tenant.id, what)]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) + n > limit:
                retry = max(1, math.ceil(window[0] + 60 - now)) if window else 60
                raise ApiError(
                    429,
                    f"rate limit exceeded: {limit} {what} per minute on the {tier.name} tier",
                    retry_after=retry,
                )
        counters = tenant.counters
        cap = tier.monthly.get(what)
        if cap is not None:
            month = time.strftime("%Y-%m", time.gmtime(now))
            if counters.get("month_of") != int(month.replace("-", "")):
                for k in tier.monthly:
                    counters.pop("month:" + k, None)
                counters["month_of"] = int(month.replace("-", ""))
            if counters.get("month:" + what, 0) + n > cap:
                raise ApiError(
                    429,
                    f"monthly cap reached: {cap} {what} per month on the {tier.name} tier",
                    retry_after=_seconds_to_next_month(now),
                )
            counters["month:" + what] = counters.get("month:" + what, 0) + n
        cap = tier.lifetime.get(what)
        if cap is not None:
            used = counters.get("life:" + what, 0)
            if used + n > cap:
                tenant.paused = True
                self.dirty[tenant.id] = tenant
                raise ApiError(
                    403,
                    f"tenant is paused: {cap} {what} per ephemeral tenant lifetime exceeded",
                )
            counters["life:" + what] = used + n
        if limit is not None:
            self._windows[(tenant.id, what)].extend([now] * n)
        self.dirty[tenant.id] = tenant

    def sockets_cap(self) -> Optional[int]:
        """Concurrent sockets allowed per tenant, or None."""
        return self.tier.sockets


def _seconds_to_next_month(now: float) -> int:
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    start = calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))
    return max(1, math.ceil(start - now))
