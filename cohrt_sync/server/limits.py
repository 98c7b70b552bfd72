"""The spec's launch rate limits, per tier ("Launch Rate Limits").

Per-minute limits answer 429 with ``Retry-After``. Monthly caps of the claimed
tiers answer 429 until the month turns (UTC). The ephemeral tier's lifetime
caps pause the whole tenant, as the spec says: every later edge request gets
403 ``FAILED_PRECONDITION`` and its open sockets are closed with
:data:`PAUSE_CLOSE_CODE`.

Which tier applies is decided per tenant: the tier claimed for its key, else
the server's default. Keys of one account at a claimed tier share one set of
per-minute and monthly buckets, kept in the account's first tenant (by id).
docs/limits.md is the user's account of all this.

Publishes are counted durably in each tenant's own database, in the
transaction that stores them (:meth:`Limiter.buckets` names where), and those
counts replace the in-memory ones when the server starts
(:meth:`Limiter.load_counts`). Everything else is counted in the state
database (:mod:`.usage`).
"""

from __future__ import annotations

import calendar
import collections
import math
import time
from typing import Callable, Deque, Dict, List, Optional, Protocol, Tuple

import attrs

from .errors import ApiError
from .state import StateStore, Tenant

MINT = "token mints"
PUBLISH = "published messages"
HISTORY = "history reads"
REQUEST = "requests"
RTK_PARTICIPANT = "participant tokens"

#: The tiers a key can be claimed at; an account shares their buckets.
CLAIMED = ("free", "plus", "pro")
#: What is counted in the tenant's database rather than the state database.
COUNTED_WITH_ROWS = (PUBLISH,)
#: Counter naming the tenant's current ephemeral lifetime (an unpause starts a new one).
LIFE_EPOCH = "life_epoch"

#: Close code of the sockets of a tenant that becomes paused; the reason
#: starts with :data:`PAUSE_REASON`.
PAUSE_CLOSE_CODE = 4003
PAUSE_REASON = "tenant paused: "


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


class SharedCounts(Protocol):
    """Windows and counters several servers decide by together (a cluster's Redis).

    Each call checks and counts in one step, so two servers can't both take
    the last unit.
    """

    def window(self, key: str, limit: int, n: int, now: float) -> Tuple[Optional[int], str]:
        """Add ``n`` to the per-minute window ``key`` unless that passes ``limit``.

        :returns: (None, a receipt for :meth:`give_back`), or (seconds to wait, "").
        """

    def give_back(self, key: str, receipt: str) -> None:
        """Take back what :meth:`window` added (a later check refused the request)."""

    def count(self, key: str, n: int, cap: int, known: int) -> Optional[int]:
        """Add ``n`` to counter ``key`` unless that passes ``cap``; the new total or None.

        :param known: what this server has counted so far (the counter starts
            there if it is new, or lower: a Redis that lost its data).
        """


class Limiter:
    """Counts usage per tenant (or account) and refuses what its tier does not allow.

    :param tier: the default tier, one of :data:`TIERS`.
    :param clock: the server's clock (seconds since the epoch).
    :param state: the tenants, whose operator columns are re-read before each
        decision (claims and unpauses made while the server runs).
    :param on_pause: called with a tenant and the reason when it becomes paused.
    :param shared: where a cluster's nodes count together; None: in this process.
    """

    def __init__(
        self,
        tier: str,
        clock: Callable[[], float] = time.time,
        state: Optional[StateStore] = None,
        on_pause: Optional[Callable[[Tenant, str], None]] = None,
        shared: Optional[SharedCounts] = None,
    ) -> None:
        self.default_tier = check_tier(tier)
        self._clock = clock
        self._state = state
        self._on_pause = on_pause
        self._shared = shared
        self._windows: Dict[Tuple[str, str], Deque[float]] = collections.defaultdict(
            collections.deque
        )
        #: Account name → the tenant holding the account's buckets.
        self._holders: Dict[str, Tenant] = {}
        #: Tenants whose counters or pause changed since they were last written
        #: (see :mod:`.usage`).
        self.dirty: Dict[str, Tenant] = {}
        # Unpauses asked for while no server ran.
        self._apply_unpauses()

    def tier_of(self, tenant: Tenant) -> Tier:
        """The tier ``tenant`` runs at: its claimed one, else the default."""
        return TIERS[tenant.tier] if tenant.tier in TIERS else self.default_tier

    def _sync(self) -> None:
        if self._state is None or not self._state.refresh():
            return
        self._holders.clear()
        self._apply_unpauses()

    def _apply_unpauses(self) -> None:
        for t in self._state.all() if self._state is not None else ():
            if t.unpause_requests > t.unpauses_done:
                # Only a paused tenant starts a new lifetime: an unpause is no
                # way to reset the caps of one still running.
                if t.paused:
                    self.unpause(t)
                t.unpauses_done = t.unpause_requests
                self.dirty[t.id] = t

    def unpause(self, tenant: Tenant) -> None:
        """Lift ``tenant``'s pause; its ephemeral lifetime caps count from zero again."""
        tenant.paused = False
        tenant.unpauses_done = tenant.unpause_requests
        for name in [k for k in tenant.counters if k.startswith("life:")]:
            del tenant.counters[name]
        tenant.counters[LIFE_EPOCH] = tenant.counters.get(LIFE_EPOCH, 0) + 1
        self.dirty[tenant.id] = tenant

    def check_paused(self, tenant: Tenant) -> None:
        """Refuse every edge call of a paused tenant."""
        self._sync()
        if tenant.paused and self.tier_of(tenant).name in CLAIMED:
            # Only ephemeral caps pause, and a claimed tier has left that life behind.
            self.unpause(tenant)
        if tenant.paused:
            raise ApiError(403, "tenant is paused: an ephemeral hard cap was exceeded")

    def _holder(self, tenant: Tenant, tier: Tier) -> Tenant:
        """The tenant whose per-minute windows and monthly counters hold ``tenant``'s usage."""
        account = tenant.account
        if account is None or tier.name not in CLAIMED or self._state is None:
            return tenant
        holder = self._holders.get(account)
        if holder is None:
            members = [
                t
                for t in self._state.all()
                if t.account == account and self.tier_of(t).name in CLAIMED
            ]
            holder = self._holders[account] = min([*members, tenant], key=lambda t: t.id)
        return holder

    def take(self, tenant: Tenant, what: str, n: int = 1) -> None:
        """Count ``n`` of ``what`` for ``tenant``, or raise the tier's refusal."""
        self._sync()
        tier = self.tier_of(tenant)
        if not (tier.per_minute or tier.monthly or tier.lifetime):
            return
        holder = self._holder(tenant, tier)
        now = self._clock()
        if self._shared is not None:
            self._take_shared(self._shared, tenant, tier, holder, what, n, now)
            return
        limit = tier.per_minute.get(what)
        if limit is not None:
            window = self._windows[(holder.id, what)]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) + n > limit:
                retry = max(1, math.ceil(window[0] + 60 - now)) if window else 60
                raise ApiError(
                    429,
                    f"rate limit exceeded: {limit} {what} per minute on the {tier.name} tier",
                    retry_after=retry,
                )
        counters = holder.counters
        cap = tier.monthly.get(what)
        if cap is not None:
            _roll_month(counters, now)
            if counters.get("month:" + what, 0) + n > cap:
                raise ApiError(
                    429,
                    f"monthly cap reached: {cap} {what} per month on the {tier.name} tier",
                    retry_after=_seconds_to_next_month(now),
                )
            counters["month:" + what] = counters.get("month:" + what, 0) + n
            self.dirty[holder.id] = holder
        cap = tier.lifetime.get(what)
        if cap is not None:
            used = tenant.counters.get("life:" + what, 0)
            if used + n > cap:
                self._pause(tenant, f"{cap} {what} per ephemeral tenant lifetime exceeded")
            tenant.counters["life:" + what] = used + n
            self.dirty[tenant.id] = tenant
        if limit is not None:
            self._windows[(holder.id, what)].extend([now] * n)

    def _take_shared(
        self,
        shared: SharedCounts,
        tenant: Tenant,
        tier: Tier,
        holder: Tenant,
        what: str,
        n: int,
        now: float,
    ) -> None:
        """:meth:`take`, deciding by the counts every node shares; the totals it
        learns become this server's, which :mod:`.usage` writes down."""
        limit = tier.per_minute.get(what)
        window_key = f"{holder.id}|{what}"
        receipt = ""
        if limit is not None:
            wait, receipt = shared.window(window_key, limit, n, now)
            if wait is not None:
                raise ApiError(
                    429,
                    f"rate limit exceeded: {limit} {what} per minute on the {tier.name} tier",
                    retry_after=wait,
                )
        try:
            cap = tier.monthly.get(what)
            if cap is not None:
                _roll_month(holder.counters, now)
                name = "month:" + what
                key = f"{holder.id}|month{_month(now)}|{what}"
                total = shared.count(key, n, cap, holder.counters.get(name, 0))
                if total is None:
                    raise ApiError(
                        429,
                        f"monthly cap reached: {cap} {what} per month on the {tier.name} tier",
                        retry_after=_seconds_to_next_month(now),
                    )
                holder.counters[name] = total
                self.dirty[holder.id] = holder
            cap = tier.lifetime.get(what)
            if cap is not None:
                name = "life:" + what
                key = f"{tenant.id}|life{tenant.counters.get(LIFE_EPOCH, 0)}|{what}"
                total = shared.count(key, n, cap, tenant.counters.get(name, 0))
                if total is None:
                    self._pause(tenant, f"{cap} {what} per ephemeral tenant lifetime exceeded")
                tenant.counters[name] = int(total or 0)
                self.dirty[tenant.id] = tenant
        except ApiError:
            if receipt:
                shared.give_back(window_key, receipt)
            raise

    def _pause(self, tenant: Tenant, why: str) -> None:
        tenant.paused = True
        self.dirty[tenant.id] = tenant
        if self._on_pause is not None:
            self._on_pause(tenant, why)
        raise ApiError(403, f"tenant is paused: {why}")

    def buckets(self, tenant: Tenant, what: str) -> Tuple[str, ...]:
        """Where a durable count of ``what`` by ``tenant`` goes, or () if its tier keeps none.

        A tenant counts in its own database: its current lifetime, and the
        month (UTC), which an account's holder sums over its members.
        """
        tier = self.tier_of(tenant)
        if not (tier.per_minute or tier.monthly or tier.lifetime):
            return ()
        return _buckets(tenant, what, self._clock())

    def load_counts(self, counts: Dict[str, Dict[str, int]]) -> None:
        """Take the durable counts of each tenant's database as the ones to decide by.

        :param counts: tenant id → bucket → count (:meth:`TenantDB.usage_counts`).
        """
        if self._state is None:
            return
        now = self._clock()
        self._holders.clear()
        months: Dict[Tuple[str, str], int] = collections.Counter()
        for tenant_id, stored in counts.items():
            tenant = self._state.tenants.get(tenant_id)
            if tenant is None:
                continue
            holder = self._holder(tenant, self.tier_of(tenant))
            _roll_month(holder.counters, now)
            for what in COUNTED_WITH_ROWS:
                life, month = _buckets(tenant, what, now)
                tenant.counters["life:" + what] = stored.get(life, 0)
                months[(holder.id, what)] += stored.get(month, 0)
            self.dirty[tenant.id] = tenant
            self.dirty[holder.id] = holder
        for (holder_id, what), n in months.items():
            self._state.tenants[holder_id].counters["month:" + what] = n

    def seed_counts(self, tenant: Tenant) -> List[Tuple[str, int]]:
        """Buckets for a database that holds no count yet, from the state database's.

        A data dir from a server that counted publishes only in the state
        database carries its counts over rather than starting from zero.
        """
        now = self._clock()
        counters = tenant.counters
        seeds: List[Tuple[str, int]] = []
        for what in COUNTED_WITH_ROWS:
            life, month = _buckets(tenant, what, now)
            seeds.append((life, counters.get("life:" + what, 0)))
            if counters.get("month_of") == _month(now):
                seeds.append((month, counters.get("month:" + what, 0)))
        return [(bucket, n) for bucket, n in seeds if n]


def check_tier(name: str) -> Tier:
    """The tier called ``name``, or a ValueError naming the choices."""
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; choose from {', '.join(TIERS)}")
    return TIERS[name]


def _buckets(tenant: Tenant, what: str, now: float) -> Tuple[str, str]:
    """The tenant's lifetime and monthly usage buckets of ``what`` at ``now``."""
    epoch = tenant.counters.get(LIFE_EPOCH, 0)
    return (f"life{epoch}:{what}", f"month{_month(now)}:{what}")


def _month(now: float) -> int:
    """The UTC month of ``now`` as YYYYMM."""
    t = time.gmtime(now)
    return t.tm_year * 100 + t.tm_mon


def _roll_month(counters: Dict[str, int], now: float) -> None:
    """Start the monthly counters afresh when the month has turned since they counted."""
    month = _month(now)
    if counters.get("month_of") != month:
        for name in [k for k in counters if k.startswith("month:")]:
            del counters[name]
        counters["month_of"] = month


def _seconds_to_next_month(now: float) -> int:
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    start = calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))
    return max(1, math.ceil(start - now))
