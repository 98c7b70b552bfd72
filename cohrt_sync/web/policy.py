"""Who may do what through the realtime routes: the channel policy and each user's token budget.

Plain functions and values, free of any web framework, so every adapter
(Flask and Django) asks the same questions the same way:

- :func:`check_policy`: the app's ``authorize(user, channel, action)``
  decides; with none, every channel is refused (safe by default).
- :class:`MintBudget`: how many connection tokens one user may mint, so
  that one user is throttled long before the tenant's shared bucket of
  mints is empty.

docs/flask.md and docs/django.md ("Channel policy", "Per-user token
budget") are the user's account of both.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import RateLimitedError
from ..models import User
from .errors import RouteError

__all__ = [
    "ACTIONS",
    "BUDGET_DEFAULTS",
    "Authorize",
    "MintBudget",
    "budget_from_setting",
    "check_policy",
]

#: What a route asks ``authorize`` about: the token route asks "subscribe".
ACTIONS = ("subscribe", "history", "publish")

#: ``authorize(user, channel, action)`` returns whether to allow it.
Authorize = Callable[[User, str, str], bool]


def check_policy(
    authorize: Optional[Authorize],
    user: User,
    channel: str,
    action: str,
    *,
    how_to_set: str,
) -> None:
    """Raise a 403 :class:`RouteError` unless ``authorize`` allows ``action`` on ``channel``.

    Without ``authorize`` every channel is refused: the routes use the
    application key, which reaches every channel of the tenant (DMs, other
    users' inboxes), so opening them all must be the app's explicit choice.

    :param authorize: the app's policy, or None.
    :param user: the logged-in user.
    :param channel: the channel asked for.
    :param action: one of :data:`ACTIONS`.
    :param how_to_set: the framework's way to set a policy and where it is
        documented, for the message.
    """
    if authorize is None:
        raise RouteError(
            f"no channel policy: {action} is refused on every channel until the app "
            f"sets one ({how_to_set})",
            403,
            "PERMISSION_DENIED",
        )
    if not authorize(user, channel, action):
        raise RouteError(
            f"user {user.id!r} may not {action} on this channel", 403, "PERMISSION_DENIED"
        )


#: The per-user token budget: a burst, then ``per_minute``, at most ``per_day``.
BUDGET_DEFAULTS: Dict[str, int] = {"burst": 10, "per_minute": 10, "per_day": 500}

#: Users a :class:`MintBudget` remembers at once (about 2 MB); past it the
#: least recently seen is forgotten, and its next mint starts from a whole budget.
MAX_USERS = 10_000


class _Bucket:
    """One allowance that refills continuously: ``capacity``, plus ``rate`` per second."""

    __slots__ = ("capacity", "rate")

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate


class MintBudget:
    """Each user's allowance of connection tokens, in this process.

    Two refilling allowances per user id: a short one (``burst`` at once,
    then ``per_minute``) that keeps one user well under the tier's mints per
    minute, and a long one (``per_day``) that slows how fast one user can
    spend the tier's monthly or lifetime caps. A mint takes one from both.
    Thread-safe; it remembers the ``max_users`` users who minted most
    recently (one forgotten starts again from a whole budget).

    :param burst: mints a user may make at once.
    :param per_minute: how fast the short allowance refills.
    :param per_day: mints a user may make in a day (0: no daily limit).
    :param max_users: users remembered at once.
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        burst: int = BUDGET_DEFAULTS["burst"],
        per_minute: float = BUDGET_DEFAULTS["per_minute"],
        per_day: float = BUDGET_DEFAULTS["per_day"],
        *,
        max_users: int = MAX_USERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_minute <= 0 or per_day < 0 or max_users < 1:
            raise ValueError(
                "a mint budget needs burst >= 1, per_minute > 0, per_day >= 0, max_users >= 1"
            )
        self._buckets: List[_Bucket] = [_Bucket(float(burst), per_minute / 60.0)]
        if per_day:
            self._buckets.append(_Bucket(float(per_day), per_day / 86400.0))
        self.max_users = max_users
        self._clock = clock
        self._lock = threading.Lock()
        # user id -> (levels of each bucket, when they were last brought up to date),
        # least recently used first.
        self._users: collections.OrderedDict[str, Tuple[List[float], float]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        """How many users are remembered now."""
        return len(self._users)

    def take(self, user_id: str) -> None:
        """Spend one mint of ``user_id``'s budget, or raise.

        :param user_id: the verified user.
        :raises RateLimitedError: the budget is spent; ``retry_after`` says
            when the next mint is allowed.
        """
        with self._lock:
            now = self._clock()
            entry = self._users.pop(user_id, None)
            levels = self._refilled(entry, now)
            short = [
                (1.0 - level) / b.rate for b, level in zip(self._buckets, levels) if level < 1.0
            ]
            if not short:
                levels = [level - 1.0 for level in levels]
            self._users[user_id] = (levels, now)
            self._bound()
        if short:
            wait = max(short)
            raise RateLimitedError(
                "this user asked for too many connection tokens: "
                f"try again in {math.ceil(wait)} s",
                retry_after=wait,
                status="RESOURCE_EXHAUSTED",
            )

    def _refilled(self, entry: Optional[Tuple[List[float], float]], now: float) -> List[float]:
        if entry is None:
            return [b.capacity for b in self._buckets]
        levels, then = entry
        elapsed = max(0.0, now - then)
        return [min(b.capacity, lvl + elapsed * b.rate) for b, lvl in zip(self._buckets, levels)]

    def _bound(self) -> None:
        # Forgetting a user only gives them a whole budget again; to reach
        # the front, max_users other users must have minted since they did.
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)


def budget_from_setting(value: Any) -> Optional[MintBudget]:
    """The :class:`MintBudget` a ``COHRT_USER_TOKEN_BUDGET`` setting asks for.

    :param value: None or False (no per-user budget), or a mapping with any
        of ``burst``, ``per_minute``, ``per_day`` (the rest take
        :data:`BUDGET_DEFAULTS`).
    :raises ValueError: the setting is not one of those.
    """
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            "COHRT_USER_TOKEN_BUDGET must be None or a mapping like "
            f"{BUDGET_DEFAULTS!r}, not {type(value).__name__}"
        )
    unknown = set(value) - set(BUDGET_DEFAULTS)
    if unknown:
        raise ValueError(
            f"COHRT_USER_TOKEN_BUDGET has unknown keys {sorted(unknown)}: "
            f"use {sorted(BUDGET_DEFAULTS)}"
        )
    merged = {**BUDGET_DEFAULTS, **value}
    for name, number in merged.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"COHRT_USER_TOKEN_BUDGET[{name!r}] must be a number")
    return MintBudget(int(merged["burst"]), merged["per_minute"], merged["per_day"])
