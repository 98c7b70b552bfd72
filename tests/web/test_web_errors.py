"""The web core's error answers: the envelope, the status table, short 5xx text, a redacted log."""

from __future__ import annotations

import io
import logging

import pytest

import cohrt_sync
from cohrt_sync.envelope import error_body
from cohrt_sync.web import NO_STORE, NotConfiguredError, RouteError, error_answer
from cohrt_sync.web.errors import BROWSER_MESSAGES


def test_a_route_error_is_the_apis_envelope_no_store() -> None:
    answer = error_answer(RouteError("not logged in", 401, "UNAUTHENTICATED"))
    assert answer.status == 401
    assert answer.body == error_body(401, "not logged in", "UNAUTHENTICATED")
    assert answer.headers == {"Cache-Control": NO_STORE}


@pytest.mark.parametrize(
    "error,code",
    [
        (cohrt_sync.CohrtConnectionError("edge session failed: _TrackedHTTPPool(host=...)"), 502),
        (cohrt_sync.CohrtTimeoutError("mint token timed out: read timeout=30.0"), 504),
        (cohrt_sync.AuthError("mint token failed: bad key", status_code=401), 503),
        (cohrt_sync.ServerError("boom", status_code=500), 502),
    ],
)
def test_a_5xx_reads_as_one_short_line_and_logs_the_detail(
    error: cohrt_sync.CohrtError, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cohrt_sync.web"):
        answer = error_answer(error)
    assert answer.status == code
    assert answer.body["error"]["message"] == BROWSER_MESSAGES[code]
    assert error.message in caplog.text


def test_the_operators_own_advice_is_kept() -> None:
    message = "realtime is not configured: set COHRT_KEY in settings.py or the environment"
    answer = error_answer(NotConfiguredError(message))
    assert answer.status == 503 and answer.body["error"]["message"] == message


def test_a_rate_limit_keeps_its_retry_after() -> None:
    answer = error_answer(cohrt_sync.RateLimitedError("slow down", retry_after=2.2))
    assert answer.status == 429 and answer.headers["Retry-After"] == "3"
    assert answer.body["error"] == {
        "code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"
    }


def test_the_web_log_is_redacted() -> None:
    # The routes log a failure's whole detail (cohrt_sync.web); a key that
    # reached it anyway is masked, as on every other logger of the library.
    key = "k_secret_in_the_web_log"
    cohrt_sync.Client(key=key, base_url="http://127.0.0.1:9").close()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("cohrt_sync.web")
    log.addHandler(handler)
    try:
        log.warning("route failed: %s", f"GET /x?key={key}")
    finally:
        log.removeHandler(handler)
    assert key not in out.getvalue() and "***" in out.getvalue()
