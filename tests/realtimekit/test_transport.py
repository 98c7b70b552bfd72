"""The RealtimeKit plumbing on its own: no server, no sleeping, a fake HTTP layer."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from cohrt_sync._http import RETRY_ALWAYS, RETRY_UNSENT
from cohrt_sync.errors import BadRequestError, CohrtError, InvalidArgumentTypeError
from cohrt_sync.realtimekit import (
    UNSET,
    Page,
    PollSchedule,
    RealtimeKit,
    RealtimeKitError,
    RealtimeKitNotFoundError,
    UpstreamError,
)
from cohrt_sync.realtimekit.transport import (
    PREFIX,
    check_id,
    fetch_page,
    given,
    iterate,
    page_params,
    retry_not_found,
    segment,
    send,
    unwrap,
)


class FakeHttp:
    """Answers each request with the next of ``answers`` and records what was sent."""

    base_url = "http://fake"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: List[Dict[str, Any]] = []

    def request(self, method: str, path: str, **kw: Any) -> Any:
        self.sent.append({"method": method, "path": path, **kw})
        return self.answers.pop(0)


def fake(*answers: Any) -> Any:
    """A :class:`FakeHttp` where an ``HttpTransport`` is expected."""
    return FakeHttp(*answers)


def test_send_prefixes_the_path_encodes_the_body_and_returns_the_envelope() -> None:
    http = fake({"success": True, "data": {"id": "m1"}})
    got = send(
        http,
        "POST",
        "/meetings",
        json_body={"title": "x"},
        retry_mode=RETRY_UNSENT,
        context="create meeting",
    )
    assert got == {"success": True, "data": {"id": "m1"}}
    [sent] = http.sent
    assert sent["path"] == PREFIX + "/meetings" and sent["retry_mode"] == RETRY_UNSENT
    assert json.loads(sent["body"]) == {"title": "x"}


def test_send_raises_on_a_failed_envelope_and_on_a_non_object() -> None:
    failed = {"success": False, "errors": [{"code": 7, "message": "nope"}]}
    with pytest.raises(RealtimeKitError, match="do it failed: nope") as info:
        send(fake(failed), "GET", "/x", retry_mode=RETRY_ALWAYS, context="do it")
    assert info.value.errors == (UpstreamError(7, "nope"),)
    with pytest.raises(CohrtError, match="expected a JSON object, got list"):
        send(fake([]), "GET", "/x", retry_mode=RETRY_ALWAYS, context="do it")


def test_unwrap_wants_a_data_object() -> None:
    assert unwrap({"data": {"a": 1}}, "c") == {"a": 1}
    with pytest.raises(CohrtError, match="c: the response carried no data object"):
        unwrap({"data": []}, "c")


def test_fetch_page_builds_objects_only_and_iterate_stops_at_the_last_page() -> None:
    http = fake(
        {
            "data": [{"n": 1}, "junk", {"n": 2}],
            "paging": {"total_count": 3, "start_offset": 1, "end_offset": 2},
        },
        {"data": [{"n": 3}], "paging": {"total_count": 3, "start_offset": 3, "end_offset": 3}},
    )

    def fetch(n: int) -> Page[int]:
        params = page_params(n, 2)
        return fetch_page(http, "/things", params, lambda raw: int(raw["n"]), "list")

    assert list(iterate(fetch)) == [1, 2, 3]
    assert [s["params"]["page_no"] for s in http.sent] == [1, 2]
    assert all(s["method"] == "GET" and s["retry_mode"] == RETRY_ALWAYS for s in http.sent)


def test_page_params_checks_paging_and_drops_none_filters() -> None:
    assert page_params(2, 5, search="a", status=None) == {
        "page_no": 2,
        "per_page": 5,
        "search": "a",
    }
    with pytest.raises(BadRequestError, match="per_page must be from 1 to 100"):
        page_params(1, 101)
    with pytest.raises(BadRequestError, match="page_no must be >= 1"):
        page_params(0, 1)
    with pytest.raises(InvalidArgumentTypeError, match="per_page must be an int"):
        page_params(1, True)


def test_given_drops_only_the_skip_marker() -> None:
    assert given(UNSET, a=None, b=UNSET, c=0) == {"a": None, "c": 0}
    assert given(None, a=None, b=False) == {"b": False}


def test_check_id_and_segment() -> None:
    assert check_id("m1", "meeting_id") == "m1"
    with pytest.raises(BadRequestError, match="meeting_id must not be empty"):
        check_id("", "meeting_id")
    with pytest.raises(InvalidArgumentTypeError, match="meeting_id must be a str, not int"):
        check_id(1, "meeting_id")
    assert segment("a/b c") == "a%2Fb%20c"


def not_found() -> RealtimeKitNotFoundError:
    return RealtimeKitNotFoundError("gone", errors=[UpstreamError("ResourceNotFound", "gone")])


def test_retry_not_found_sleeps_between_attempts_and_raises_the_last() -> None:
    sleeps: List[float] = []
    calls: List[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise not_found()
        return "ok"

    assert retry_not_found(PollSchedule(attempts=3, interval=0.5), sleeps.append, call) == "ok"
    assert sleeps == [0.5, 0.5]

    last: Optional[RealtimeKitNotFoundError] = None

    def always() -> str:
        nonlocal last
        last = not_found()
        raise last

    with pytest.raises(RealtimeKitNotFoundError) as info:
        retry_not_found(PollSchedule(attempts=2, interval=0), sleeps.append, always)
    assert info.value is last


def test_retry_not_found_lets_other_errors_through_at_once() -> None:
    sleeps: List[float] = []

    def bad() -> str:
        raise RealtimeKitError("bad")

    with pytest.raises(RealtimeKitError, match="bad"):
        retry_not_found(PollSchedule(attempts=5), sleeps.append, bad)
    assert sleeps == []


def test_every_public_call_of_the_assembled_wrapper_has_a_docstring() -> None:
    # RealtimeKit gets most calls from its parts, which test_docs (own members only) skips.
    public = [n for n in dir(RealtimeKit) if not n.startswith("_")]
    assert {"create_meeting", "add_participant", "list_presets", "request"} <= set(public)
    assert [n for n in public if not (getattr(RealtimeKit, n).__doc__ or "").strip()] == []


def test_request_normalises_method_and_path_and_retries_by_idempotence() -> None:
    http = fake({"success": True}, {"success": True})
    kit = RealtimeKit(http)
    kit.request("put", "sessions", json={"a": 1}, params={"x": "y"})
    kit.request("POST", "/sessions")
    put, post = http.sent
    assert (put["method"], put["path"], put["retry_mode"]) == (
        "PUT",
        PREFIX + "/sessions",
        RETRY_ALWAYS,
    )
    assert put["context"] == "RealtimeKit PUT /sessions" and put["params"] == {"x": "y"}
    assert (post["method"], post["retry_mode"], post["body"]) == ("POST", RETRY_UNSENT, None)
