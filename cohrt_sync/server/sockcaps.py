"""Who may open a socket: the tenant's cap, each user's share of it, each user's rate.

A connection token names a user, not a socket, and one token can open any
number of sockets. Without a share per user, one user (say, anyone logged in
to a web app that hands out tokens) held the free tier's whole cap of 50
sockets, and 300 open/close cycles in 1.6 s sent 600 join/leave frames to
every listener of the channel. So, per user of a tenant (the token's ``sub``):

* **sockets at once**: ``max_user_sockets``, by default a fifth of the
  tenant's socket cap (at least 2), so it takes five users to fill it;
* **socket opens**: ``user_socket_opens`` per minute, by default a fifth of
  the tier's requests per minute (:data:`UNLIMITED_USER_OPENS` on the
  ``unlimited`` tier), as a token bucket: a user may open that many at once
  (reconnecting everything after a drop), then at that rate.

Both refusals are 429 with ``Retry-After`` at the handshake, before the
upgrade and before the tenant's request budget is charged. The tenant's own
cap (its tier's, or the server's ``max_tenant_sockets`` share when lower) is
checked here too. docs/limits.md has the table.
"""

from __future__ import annotations

import collections
import math
from typing import Callable, Dict, MutableMapping, Optional, Tuple

from .errors import ApiError
from .limits import REQUEST, Tier

#: A user may take this share of a tenant's socket cap and request rate (1/5).
USER_SHARE = 5
#: Fewest sockets a user may hold at once, whatever the tenant's cap.
MIN_USER_SOCKETS = 2
#: Socket opens per minute per user on a tier without a request rate.
UNLIMITED_USER_OPENS = 120
#: Seconds a socket refused by a cap is told to wait (Retry-After).
CAP_RETRY_S = 5
#: Buckets kept before full, idle ones are swept.
SWEEP_AT = 10_000

_User = Tuple[str, str]


class SocketCaps:
    """Concurrent sockets per tenant and per user, and each user's rate of opening them.

    :param clock: the server's clock, in seconds.
    :param max_user_sockets: sockets one user may hold at once; 0 for a fifth
        of the tenant's cap.
    :param user_socket_opens: sockets one user may open per minute; 0 for a
        fifth of the tier's requests per minute.
    :param per_tenant: where open sockets per tenant are counted (a
        cluster's shared count); a ``Counter`` of this process by default.
        Users' sockets and rates are counted per process.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        max_user_sockets: int = 0,
        user_socket_opens: int = 0,
        per_tenant: Optional[MutableMapping[str, int]] = None,
    ) -> None:
        self._clock = clock
        self.max_user_sockets = max_user_sockets
        self.user_socket_opens = user_socket_opens
        #: Open sockets per tenant (a cluster's count every node's; a missing
        #: tenant reads 0).
        self.per_tenant: MutableMapping[str, int] = (
            per_tenant if per_tenant is not None else collections.Counter()
        )
        #: Open sockets per (tenant, user); users with none are dropped.
        self.per_user: Dict[_User, int] = {}
        # (tenant, user) -> (opens left, when that was counted, the rate then)
        self._buckets: Dict[_User, Tuple[float, float, int]] = {}
        self._sweep_at = SWEEP_AT

    # -- the limits --------------------------------------------------------
    def tenant_cap(self, tier: Tier, share: Optional[int]) -> Tuple[Optional[int], str]:
        """The tenant's socket cap and where it comes from, or (None, "") without one.

        :param share: the server's per-tenant share (``max_tenant_sockets``), if any.
        """
        if share is not None and (tier.sockets is None or share < tier.sockets):
            # One tenant must not hold every connection slot of the server.
            return share, "per tenant (max_tenant_sockets)"
        if tier.sockets is not None:
            return tier.sockets, f"on the {tier.name} tier"
        return None, ""

    def user_cap(self, tier: Tier, share: Optional[int]) -> Optional[int]:
        """Sockets one user of such a tenant may hold at once (None: no cap)."""
        if self.max_user_sockets:
            return self.max_user_sockets
        cap, _ = self.tenant_cap(tier, share)
        return None if cap is None else max(MIN_USER_SOCKETS, cap // USER_SHARE)

    def user_opens(self, tier: Tier) -> int:
        """Sockets one user of a tenant at ``tier`` may open per minute."""
        if self.user_socket_opens:
            return self.user_socket_opens
        per_minute = tier.per_minute.get(REQUEST)
        if per_minute is None:
            return UNLIMITED_USER_OPENS
        return max(1, per_minute // USER_SHARE)

    # -- the handshake -----------------------------------------------------
    def check_user(self, tenant_id: str, user_id: str, tier: Tier, share: Optional[int]) -> None:
        """Refuse a socket its user may not open now (429), before anything is charged."""
        cap = self.user_cap(tier, share)
        key = (tenant_id, user_id)
        if cap is not None and self.per_user.get(key, 0) >= cap:
            raise ApiError(
                429,
                f"socket cap reached: {cap} concurrent sockets per user (max_user_sockets);"
                " close one of this user's sockets first",
                retry_after=CAP_RETRY_S,
            )
        rate = self.user_opens(tier)
        left = self._left(key, rate)
        if left < 1:
            wait = max(1, math.ceil((1 - left) * 60 / rate))
            raise ApiError(
                429,
                f"rate limit exceeded: {rate} socket opens per minute per user"
                f" (user_socket_opens); retry in {wait}s",
                retry_after=wait,
            )

    def check_tenant(self, tenant_id: str, tier: Tier, share: Optional[int]) -> None:
        """Refuse a socket past the tenant's cap (429)."""
        cap, where = self.tenant_cap(tier, share)
        if cap is not None and self.per_tenant[tenant_id] >= cap:
            raise ApiError(
                429,
                f"socket cap reached: {cap} concurrent sockets {where}",
                retry_after=CAP_RETRY_S,
            )

    def opened(self, tenant_id: str, user_id: str, tier: Tier) -> None:
        """Count a socket that was admitted: one open of its user's rate, one of each cap."""
        key = (tenant_id, user_id)
        rate = self.user_opens(tier)
        self._buckets[key] = (self._left(key, rate) - 1, self._clock(), rate)
        self.per_tenant[tenant_id] += 1
        self.per_user[key] = self.per_user.get(key, 0) + 1
        if len(self._buckets) >= self._sweep_at:
            self._sweep()

    def closed(self, tenant_id: str, user_id: str) -> None:
        """A socket counted by :meth:`opened` is gone."""
        key = (tenant_id, user_id)
        self.per_tenant[tenant_id] -= 1
        left = self.per_user.get(key, 0) - 1
        if left > 0:
            self.per_user[key] = left
        else:
            self.per_user.pop(key, None)

    # -- the buckets -------------------------------------------------------
    def _left(self, key: _User, rate: int) -> float:
        """Opens ``key`` has left now: its bucket refilled at ``rate`` per minute."""
        entry = self._buckets.get(key)
        if entry is None:
            return float(rate)
        left, at, _ = entry
        return min(float(rate), left + (self._clock() - at) * rate / 60)

    def _sweep(self) -> None:
        # A full bucket of a user with no socket is what a missing one means.
        # Sweeping when the count doubles keeps the cost per open constant.
        for key in [k for k in self._buckets if k not in self.per_user]:
            rate = self._buckets[key][2]
            if self._left(key, rate) >= rate:
                del self._buckets[key]
        self._sweep_at = max(SWEEP_AT, 2 * len(self._buckets))


__all__ = [
    "CAP_RETRY_S",
    "MIN_USER_SOCKETS",
    "UNLIMITED_USER_OPENS",
    "USER_SHARE",
    "SocketCaps",
]
