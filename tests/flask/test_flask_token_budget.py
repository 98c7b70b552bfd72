"""Each user's budget of connection tokens: one user is throttled before the tenant's runs out.

The free tier gives a tenant 30 token mints a minute, shared by every user
of the app; without a per-user budget, 30 calls from one user to the token
route lock everyone else out for a minute.
"""

from __future__ import annotations

import threading
from typing import Any, List

import pytest
from flask_test_app import KEY, build_app, login

from cohrt_sync import Retry, errors
from cohrt_sync.web.policy import MintBudget, budget_from_setting


def _free_tier_app(srv: Any, **config: Any) -> Any:
    return build_app(
        {
            "COHRT_KEY": KEY,
            "COHRT_BASE_URL": srv.base_url,
            "COHRT_CLIENT_OPTIONS": {"retry": Retry(total=0)},
            **config,
        }
    )


def test_one_user_cannot_spend_the_tenants_mints(tmp_path: Any) -> None:
    from cohrt_sync.server import LocalServer

    with LocalServer(keys=[KEY], provision=True, tier="free", data_dir=tmp_path) as srv:
        app = _free_tier_app(srv)
        try:
            mallory, bob = app.test_client(), app.test_client()
            login(mallory, "mallory", "Mallory")
            login(bob, "bob", "Bob")
            answers = [mallory.post("/realtime/token", json={"channel": "c"}) for _ in range(30)]
            codes = [r.status_code for r in answers]
            # The default budget: a burst of 10, then 429 with the route's own Retry-After.
            assert codes == [200] * 10 + [429] * 20, codes
            refused = answers[10]
            assert refused.json["error"]["status"] == "RESOURCE_EXHAUSTED"
            assert refused.json["error"]["message"].startswith(
                "this user asked for too many connection tokens: try again in "
            )
            assert 1 <= int(refused.headers["Retry-After"]) <= 6
            assert refused.headers["Cache-Control"] == "private, no-store, max-age=0"
            # Everyone else still gets tokens: the tenant's 30 a minute were not spent.
            assert bob.post("/realtime/token", json={"channel": "c"}).status_code == 200
        finally:
            app.extensions["test_cohrt"].close(app)


def test_the_budget_is_a_setting_and_can_be_turned_off(tmp_path: Any) -> None:
    from cohrt_sync.server import LocalServer

    with LocalServer(keys=[KEY], provision=True, tier="free", data_dir=tmp_path) as srv:
        tight = _free_tier_app(srv, COHRT_USER_TOKEN_BUDGET={"burst": 2})
        off = _free_tier_app(srv, COHRT_USER_TOKEN_BUDGET=None)
        try:
            c = tight.test_client()
            login(c)
            codes = [c.post("/realtime/token", json={"channel": "c"}).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            c = off.test_client()
            login(c)
            codes = [c.post("/realtime/token", json={"channel": "c"}).status_code for _ in "x" * 29]
            assert codes == [200] * 28 + [429]  # only the tenant's own bucket is left
        finally:
            for app in (tight, off):
                app.extensions["test_cohrt"].close(app)
    with pytest.raises(ValueError, match="unknown keys \\['per_hour'\\]"):
        budget_from_setting({"per_hour": 3})
    with pytest.raises(ValueError, match="must be None or a mapping"):
        budget_from_setting(10)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _spend(budget: MintBudget, user: str, n: int) -> List[bool]:
    out = []
    for _ in range(n):
        try:
            budget.take(user)
            out.append(True)
        except errors.RateLimitedError:
            out.append(False)
    return out


def test_the_budget_refills_per_minute_and_caps_a_day() -> None:
    clock = FakeClock()
    budget = MintBudget(burst=3, per_minute=6, per_day=5, clock=clock)
    assert _spend(budget, "u", 4) == [True, True, True, False]
    with pytest.raises(errors.RateLimitedError) as refused:
        budget.take("u")
    assert refused.value.retry_after == pytest.approx(10.0)  # one mint per 10 s
    assert _spend(budget, "other", 1) == [True]  # per user
    clock.now += 10
    assert _spend(budget, "u", 2) == [True, False]
    clock.now += 60  # the minute's allowance is whole again, the day's is at 1
    assert _spend(budget, "u", 2) == [True, False]
    with pytest.raises(errors.RateLimitedError) as refused:
        budget.take("u")
    assert refused.value.retry_after is not None and refused.value.retry_after > 3600


def test_the_budget_holds_under_threads_and_stays_bounded() -> None:
    budget = MintBudget(burst=50, per_minute=0.001, per_day=0, clock=FakeClock())
    granted: List[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        got = _spend(budget, "same-user", 40)
        with lock:
            granted.extend(got)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert granted.count(True) == 50  # never one more than the burst, whatever the interleaving

    small = MintBudget(burst=1, per_minute=1, max_users=100, clock=FakeClock())
    for n in range(10_000):
        small.take(f"user-{n}")
    assert len(small) == 100
    with pytest.raises(errors.RateLimitedError):
        small.take("user-9999")  # the most recent are remembered
