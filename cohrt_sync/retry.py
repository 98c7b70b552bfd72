"""Retry and backoff policy as an immutable value (in the style of urllib3's ``Retry``).

A :class:`Retry` never sleeps and never mutates: :meth:`Retry.increment`
returns a new policy with one more attempt recorded, and
:meth:`Retry.get_backoff` says how long to wait before the next attempt. The
caller does the waiting (on an :class:`threading.Event`, so ``close()`` can
interrupt it). That keeps the policy testable as a pure value.

A policy may carry a ``budget``: the wall-clock seconds one call may spend
after its first attempt, waits and retried attempts together.
:meth:`Retry.next_wait` answers ``None`` when the next wait would not end
inside it (a ``Retry-After`` of a minute, or of a month, against a budget of
10 s), and the caller raises the error it holds at once.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from typing import Callable, FrozenSet, Iterable, Optional, Tuple

import attrs

__all__ = ["DEFAULT_RETRY", "RECONNECT_BACKOFF", "Retry", "RetryAttempt", "parse_retry_after"]


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date.

    :param value: the header's value, or ``None`` when absent.
    :param now: the current time (``time.time()``) an HTTP-date is measured from.
    :returns: seconds, at least 0 (a date already past means "now"), or
        ``None`` when the value is neither form (then back off as usual).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            # RFC 7231's three date forms; a date without a zone is not one of them.
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@attrs.frozen
class RetryAttempt:
    """One failed attempt recorded in :attr:`Retry.history`.

    :param status: the HTTP status that failed, or ``None`` for a transport error.
    :param error: a short description of the transport error, if any.
    :param retry_after: the server's ``Retry-After`` in seconds, if it sent one.
    """

    status: Optional[int] = None
    error: Optional[str] = None
    retry_after: Optional[float] = None


def _statuses(value: Iterable[int]) -> FrozenSet[int]:
    return frozenset(int(v) for v in value)


@attrs.frozen
class Retry:
    """How many times to retry and how long to wait between attempts.

    :param total: attempts allowed after the first; ``None`` retries forever
        (used for channel reconnects).
    :param backoff_factor: base delay in seconds; attempt *n* (1-based) waits
        ``backoff_factor * 2 ** (n - 1)`` before jitter, capped at ``backoff_max``.
    :param backoff_max: cap of the exponential delay, in seconds.
    :param jitter: fraction of the delay that is randomised: the wait is drawn
        uniformly from ``[delay * (1 - jitter), delay]`` so a crowd of clients
        does not reconnect in lock-step.
    :param status_forcelist: HTTP statuses worth retrying.
    :param respect_retry_after: wait what ``Retry-After`` says on 429/503.
    :param retry_after_max: ceiling on an honoured ``Retry-After``.
    :param budget: wall-clock seconds one call may spend in retries (waits and
        retried attempts), counted from the start of the call; ``None`` for no
        limit (channel reconnects, which run until closed).
    :param history: the failed attempts so far (oldest first).
    """

    total: Optional[int] = 3
    backoff_factor: float = 0.25
    backoff_max: float = 10.0
    jitter: float = 0.5
    status_forcelist: FrozenSet[int] = attrs.field(
        default=frozenset({429, 502, 503, 504}), converter=_statuses
    )
    respect_retry_after: bool = True
    retry_after_max: float = 120.0
    budget: Optional[float] = 10.0
    history: Tuple[RetryAttempt, ...] = ()

    @property
    def attempts(self) -> int:
        """Number of failed attempts recorded so far."""
        return len(self.history)

    def is_retryable_status(self, status: int) -> bool:
        """Whether a response with this status may be retried.

        :param status: the HTTP status code.
        """
        return status in self.status_forcelist

    def increment(
        self,
        *,
        status: Optional[int] = None,
        error: Optional[BaseException] = None,
        retry_after: Optional[float] = None,
    ) -> Retry:
        """Return a new policy with one more failed attempt recorded.

        :param status: the HTTP status of the failed attempt, if any.
        :param error: the transport error of the failed attempt, if any.
        :param retry_after: the server's ``Retry-After`` in seconds, if any.
        """
        attempt = RetryAttempt(
            status=status,
            error=None if error is None else type(error).__name__,
            retry_after=retry_after,
        )
        return attrs.evolve(self, history=(*self.history, attempt))

    def is_exhausted(self) -> bool:
        """True when more attempts have failed than ``total`` allows."""
        return self.total is not None and self.attempts > self.total

    def get_backoff(self, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the next attempt.

        Zero before the first failure. When the last failure carried a
        ``Retry-After`` (and it is honoured) that value wins, capped at
        ``retry_after_max``; otherwise exponential backoff with jitter.

        :param rng: source of uniform numbers in ``[0, 1)``; inject for tests.
        """
        if not self.history:
            return 0.0
        last = self.history[-1]
        if self.respect_retry_after and last.retry_after is not None:
            return min(max(0.0, last.retry_after), self.retry_after_max)
        # A forever-retrying policy would otherwise compute ever larger powers of two.
        exponent = min(self.attempts - 1, 62)
        delay = min(self.backoff_max, self.backoff_factor * (2**exponent))
        jitter = min(max(self.jitter, 0.0), 1.0)
        return float(delay * (1.0 - jitter * rng()))

    def next_wait(
        self, elapsed: float, rng: Callable[[], float] = random.random
    ) -> Optional[float]:
        """Seconds to wait before the next attempt, or ``None`` for "give up now".

        ``None`` when the policy is exhausted, or when the wait would not end
        inside the budget: a ``Retry-After`` longer than what is left, or
        longer than ``retry_after_max``, is never slept on (retrying sooner
        than the server allows would only be refused again).

        :param elapsed: seconds since the call started.
        :param rng: source of uniform numbers in ``[0, 1)``; inject for tests.
        """
        if self.is_exhausted():
            return None
        last = self.history[-1] if self.history else None
        asked = None if last is None or not self.respect_retry_after else last.retry_after
        if asked is not None and asked > self.retry_after_max:
            return None
        wait = self.get_backoff(rng)
        if self.budget is not None and elapsed + wait >= self.budget:
            return None
        return wait

    def remaining(self, elapsed: float) -> Optional[float]:
        """Seconds of the budget left after ``elapsed``; ``None`` without a budget.

        :param elapsed: seconds since the call started.
        """
        return None if self.budget is None else max(0.0, self.budget - elapsed)

    def reset(self) -> Retry:
        """Return the same policy with an empty history (after a success)."""
        return attrs.evolve(self, history=())


#: Policy for HTTP calls: 3 retries, 0.25 s doubling, capped at 10 s, all
#: within a budget of 10 s per call.
DEFAULT_RETRY = Retry()

#: Policy for channel reconnects: forever, 0.5 s doubling, capped at 30 s;
#: no budget (a channel reconnects until closed).
RECONNECT_BACKOFF = Retry(
    total=None, backoff_factor=0.5, backoff_max=30.0, jitter=0.5, budget=None
)
