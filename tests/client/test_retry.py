"""The retry policy is a pure, immutable value: no sleeping in these tests."""

from __future__ import annotations

import attrs
import pytest

from cohrt_sync.retry import DEFAULT_RETRY, RECONNECT_BACKOFF, Retry


def test_increment_returns_new_value_and_keeps_original() -> None:
    r0 = Retry(total=2)
    r1 = r0.increment(status=503)
    assert r0.attempts == 0 and r1.attempts == 1
    assert r1 is not r0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r1.total = 5  # type: ignore[misc]


def test_exhaustion_counts_attempts_after_the_first() -> None:
    r = Retry(total=2)
    r = r.increment(error=ConnectionError())
    r = r.increment(error=ConnectionError())
    assert not r.is_exhausted()
    assert r.increment(status=502).is_exhausted()


def test_forever_policy_is_never_exhausted() -> None:
    r = RECONNECT_BACKOFF
    for _ in range(200):
        r = r.increment(error=OSError())
    assert not r.is_exhausted()
    assert r.get_backoff(rng=lambda: 0.0) == RECONNECT_BACKOFF.backoff_max


def test_backoff_is_exponential_and_capped_without_jitter() -> None:
    r = Retry(total=None, backoff_factor=0.5, backoff_max=3.0, jitter=0.0)
    assert r.get_backoff() == 0.0
    delays = []
    for _ in range(6):
        r = r.increment(status=503)
        delays.append(r.get_backoff())
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_jitter_stays_within_bounds() -> None:
    r = Retry(backoff_factor=1.0, backoff_max=100, jitter=0.5).increment().increment()
    assert r.get_backoff(rng=lambda: 0.0) == 2.0
    assert r.get_backoff(rng=lambda: 0.999999) == pytest.approx(1.0, abs=1e-5)
    assert r.get_backoff(rng=lambda: 0.5) == 1.5


def test_retry_after_wins_and_is_capped() -> None:
    r = Retry(backoff_factor=0.1, retry_after_max=30)
    assert r.increment(status=429, retry_after=7).get_backoff() == 7
    assert r.increment(status=503, retry_after=999).get_backoff() == 30
    ignoring = attrs.evolve(r, respect_retry_after=False, jitter=0.0)
    assert ignoring.increment(status=429, retry_after=7).get_backoff() == 0.1


def test_status_forcelist_and_history() -> None:
    assert all(DEFAULT_RETRY.is_retryable_status(s) for s in (429, 502, 503, 504))
    assert not DEFAULT_RETRY.is_retryable_status(500)
    assert not DEFAULT_RETRY.is_retryable_status(400)
    r = DEFAULT_RETRY.increment(error=TimeoutError()).increment(status=429, retry_after=1)
    assert [(a.status, a.error) for a in r.history] == [(None, "TimeoutError"), (429, None)]
    assert r.reset().attempts == 0


def test_status_forcelist_accepts_any_iterable() -> None:
    assert Retry(status_forcelist=[500]).status_forcelist == frozenset({500})


def test_next_wait_gives_up_when_retry_after_outlasts_the_budget() -> None:
    r = Retry(total=3, budget=10.0, jitter=0.0)
    assert r.increment(status=429, retry_after=4).next_wait(elapsed=1.0) == 4
    # What is left of the budget decides, not the whole budget.
    assert r.increment(status=429, retry_after=4).next_wait(elapsed=6.5) is None
    assert r.increment(status=429, retry_after=60).next_wait(elapsed=0.0) is None
    # A month's Retry-After is refused at once, even without a budget.
    month = 2_600_000
    assert attrs.evolve(r, budget=None).increment(status=429, retry_after=month).next_wait(
        elapsed=0.0) is None


def test_next_wait_bounds_plain_backoff_and_attempts() -> None:
    r = Retry(total=1, backoff_factor=2.0, jitter=0.0, budget=3.0).increment(status=503)
    assert r.next_wait(elapsed=0.5) == 2.0
    assert r.next_wait(elapsed=1.5) is None  # 1.5 + 2.0 would end past 3.0
    assert r.increment(status=503).next_wait(elapsed=0.0) is None  # total spent
    assert Retry(budget=None).increment(status=503).next_wait(elapsed=1e9) is not None


def test_remaining_budget() -> None:
    assert Retry(budget=10.0).remaining(3.0) == 7.0
    assert Retry(budget=10.0).remaining(30.0) == 0.0
    assert Retry(budget=None).remaining(30.0) is None


def test_default_budgets() -> None:
    assert DEFAULT_RETRY.budget == 10.0
    # Reconnects run until the channel is closed: no per-call budget.
    assert RECONNECT_BACKOFF.budget is None


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    from email.utils import formatdate

    from cohrt_sync.retry import parse_retry_after

    now = 1_800_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 7 ", now=now) == 7.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == 90.0
    # RFC 7231 also allows the obsolete forms.
    assert parse_retry_after("Sunday, 15-Jan-2027 08:00:00 GMT", now=now) is not None
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0  # already past
    for bad in (None, "", "soon", "nan", "inf", "1e999", "Mon, 99 Foo 2026 00:00:00 GMT"):
        assert parse_retry_after(bad, now=now) is None, bad
