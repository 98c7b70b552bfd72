"""The client wrapper, ``RealtimeKit``, against real local servers."""

from __future__ import annotations

import datetime
import json
from typing import Any, Callable, Iterator, List, Tuple

import pytest

import cohrt_sync
from cohrt_sync.errors import (
    AuthError,
    BadRequestError,
    CohrtError,
    CohrtTimeoutError,
    InvalidArgumentTypeError,
    NotFoundError,
    NotProvisionedError,
)
from cohrt_sync.realtimekit import (
    DEFAULT_POLL,
    UNSET,
    Meeting,
    MeetingNotReadyError,
    Page,
    Participant,
    PollSchedule,
    RealtimeKit,
    RealtimeKitBadRequestError,
    RealtimeKitError,
    RealtimeKitNotFoundError,
)

from .conftest import GUEST, HOST, KEY


def make_rtk(base_url: str, key: str = KEY, **kw: Any) -> Tuple[cohrt_sync.Client, RealtimeKit]:
    client = cohrt_sync.Client(key=key, base_url=base_url)
    # Client.realtimekit when the client has it; else the wrapper over its transport.
    rtk = getattr(client, "realtimekit", None) or RealtimeKit(client._http)
    assert isinstance(rtk, RealtimeKit)
    return client, rtk.configured(**kw)


class Sleeps:
    """A fake ``sleep``: records each wait and runs ``then`` instead of sleeping."""

    def __init__(self, then: Callable[[float], None] = lambda s: None) -> None:
        self.calls: List[float] = []
        self.then = then

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.then(seconds)


@pytest.fixture()
def kit(server: Any) -> Iterator[RealtimeKit]:
    client, rtk = make_rtk(server.base_url, sleep=Sleeps())
    try:
        yield rtk
    finally:
        client.close()


@pytest.fixture()
def fresh_kit(server: Any, fresh_key: str) -> Iterator[RealtimeKit]:
    client, rtk = make_rtk(server.base_url, fresh_key, sleep=Sleeps())
    try:
        yield rtk
    finally:
        client.close()


# -- poll after create ---------------------------------------------------------------------------
def test_create_meeting_polls_until_ready_within_the_delay(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=1500)
    # Each "sleep" moves the server's clock 1 s instead of waiting, so the meeting
    # resolves on the third read however slow the machine (up to 0.5 s per call).
    sleeps = Sleeps(then=lambda s: srv.advance_clock(1.0))
    client, rtk = make_rtk(srv.base_url, sleep=sleeps)
    with client:
        meeting = rtk.create_meeting("Standup")
        assert isinstance(meeting, Meeting) and meeting.title == "Standup"
        assert sleeps.calls == [0.2, 0.2]
        assert rtk.get_meeting(meeting.id) == meeting


def test_create_meeting_times_out_cleanly_when_the_delay_is_longer(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=60_000)
    sleeps = Sleeps()
    client, rtk = make_rtk(srv.base_url, sleep=sleeps)
    with client:
        with pytest.raises(MeetingNotReadyError) as info:
            rtk.create_meeting("Late")
        err = info.value
        assert isinstance(err, CohrtTimeoutError) and isinstance(err, CohrtError)
        assert err.attempts == 5 and sleeps.calls == [0.2] * 4
        assert err.meeting_id in str(err) and "5 attempt" in str(err)
        cause = err.__cause__
        assert isinstance(cause, RealtimeKitNotFoundError)
        assert cause.upstream_code == 404
        assert cause.upstream_message is not None
        assert cause.upstream_message.startswith("ResourceNotFound")
        # The meeting exists: once the delay passes, waiting again resolves it.
        srv.advance_clock(60)
        assert rtk.wait_ready(err.meeting_id).id == err.meeting_id


def test_poll_schedule_is_configurable(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=60_000)
    sleeps = Sleeps()
    client, rtk = make_rtk(srv.base_url, sleep=sleeps, poll=PollSchedule(attempts=2, interval=0.01))
    with client:
        with pytest.raises(MeetingNotReadyError) as info:
            rtk.create_meeting()
        assert info.value.attempts == 2 and sleeps.calls == [0.01]
        sleeps.calls.clear()
        with pytest.raises(MeetingNotReadyError):
            rtk.wait_ready(info.value.meeting_id, poll=PollSchedule(attempts=3, interval=0.5))
        assert sleeps.calls == [0.5, 0.5]
        slow = rtk.configured(poll=PollSchedule(attempts=3, interval=1.0))
        assert slow.poll.attempts == 3 and rtk.poll.attempts == 2
        sleeps.calls.clear()
        with pytest.raises(MeetingNotReadyError):
            slow.wait_ready(info.value.meeting_id)
        assert sleeps.calls == [1.0, 1.0]
        with pytest.raises(AttributeError):
            rtk.poll = DEFAULT_POLL  # type: ignore[misc]
    assert DEFAULT_POLL == PollSchedule(attempts=5, interval=0.2)
    with pytest.raises(BadRequestError):
        PollSchedule(attempts=0)
    with pytest.raises(BadRequestError):
        PollSchedule(interval=-1)


def test_without_wait_a_new_meeting_is_not_found_with_upstream_details(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=60_000)
    client, rtk = make_rtk(srv.base_url, sleep=Sleeps())
    with client:
        meeting = rtk.create_meeting("quick", wait_ready=False)
        with pytest.raises(RealtimeKitNotFoundError) as info:
            rtk.get_meeting(meeting.id)
        err = info.value
        assert isinstance(err, NotFoundError) and isinstance(err, RealtimeKitError)
        assert err.status_code == 404 and err.upstream_code == 404
        assert err.upstream_message is not None and meeting.id in err.upstream_message
        assert err.errors[0].message == err.upstream_message


def test_add_participant_retries_a_meeting_created_moments_ago(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=1500)
    sleeps = Sleeps(then=lambda s: srv.advance_clock(1.0))
    client, rtk = make_rtk(srv.base_url, sleep=sleeps)
    with client:
        meeting = rtk.create_meeting("now", wait_ready=False)
        assert sleeps.calls == []
        part = rtk.add_participant(meeting.id, preset_name=HOST, name="Ada")
        assert part.token and part.meeting_id == meeting.id
        assert sleeps.calls == [0.2, 0.2]


def test_add_participant_gives_up_on_an_unknown_meeting(kit: RealtimeKit) -> None:
    with pytest.raises(RealtimeKitNotFoundError) as info:
        kit.add_participant("00000000-0000-0000-0000-000000000000", preset_name=HOST)
    assert info.value.upstream_message is not None
    assert "ResourceNotFound" in info.value.upstream_message
    sleeps = kit._sleep
    assert isinstance(sleeps, Sleeps) and sleeps.calls == [0.2] * 4


# -- every path ------------------------------------------------------------------------------------
def test_meetings_end_to_end(kit: RealtimeKit) -> None:
    m = kit.create_meeting(
        "Design review",
        persist_chat=True,
        session_keep_alive_time_in_secs=120,
        ai_config={"transcription": {"language": "fr"}},
    )
    assert m.active and m.persist_chat and m.session_keep_alive_time_in_secs == 120
    assert m.ai_config is not None and m.ai_config["transcription"]["language"] == "fr"
    assert isinstance(m.created_at, datetime.datetime) and m.created_at.tzinfo is not None
    assert m.raw["id"] == m.id

    updated = kit.update_meeting(m.id, title="Design review II", status="INACTIVE")
    assert updated.title == "Design review II" and not updated.active and updated.persist_chat
    assert kit.update_meeting(m.id, title=None).title is None
    assert kit.update_meeting(m.id) == kit.get_meeting(m.id)

    replaced = kit.replace_meeting(m.id, title="fresh")
    assert replaced.title == "fresh" and replaced.active and not replaced.persist_chat
    assert replaced.session_keep_alive_time_in_secs == 60
    assert replaced.created_at == m.created_at


def test_list_and_iter_meetings_across_pages(fresh_kit: RealtimeKit) -> None:
    assert list(fresh_kit.iter_meetings()) == []
    made = [fresh_kit.create_meeting(f"m{i}") for i in range(5)]
    page = fresh_kit.list_meetings(per_page=2, page_no=2)
    assert isinstance(page, Page) and len(page) == 2 and page.has_next
    assert [m.id for m in page] == [made[2].id, made[3].id]
    assert (page.paging.total_count, page.paging.start_offset, page.paging.end_offset) == (5, 3, 4)
    last = fresh_kit.list_meetings(per_page=2, page_no=3)
    assert not last.has_next and [m.id for m in last] == [made[4].id]
    assert [m.id for m in fresh_kit.iter_meetings(per_page=2)] == [m.id for m in made]
    assert [m.id for m in fresh_kit.iter_meetings(search="m3")] == [made[3].id]
    fresh_kit.update_meeting(made[0].id, status="INACTIVE")
    assert [m.id for m in fresh_kit.iter_meetings(status="INACTIVE")] == [made[0].id]


def test_participants_end_to_end(kit: RealtimeKit) -> None:
    m = kit.create_meeting("calls")
    ada = kit.add_participant(
        m.id, preset_name=HOST, name="Ada", picture="https://e.x/a.png", custom_participant_id="a1"
    )
    assert isinstance(ada, Participant) and ada.token and ada.custom_participant_id == "a1"
    assert ada.token not in repr(ada) and "token" not in ada.raw
    bob = kit.add_participant(m.id, preset_name=GUEST)

    got = kit.get_participant(m.id, ada.id)
    assert got.token is None and got.name == "Ada" and got.picture == "https://e.x/a.png"
    assert got == Participant.from_wire(dict(ada.raw), m.id)

    page = kit.list_participants(m.id, per_page=1)
    assert [p.id for p in page] == [ada.id] and page.has_next
    assert [p.id for p in kit.iter_participants(m.id, per_page=1)] == [ada.id, bob.id]
    assert [p.id for p in kit.iter_participants(m.id, search="ada")] == [ada.id]

    renamed = kit.update_participant(m.id, ada.id, name="Ada L.", preset_name=GUEST)
    assert renamed.name == "Ada L." and renamed.preset_name == GUEST
    assert renamed.picture == "https://e.x/a.png" and renamed.token not in (None, ada.token)
    assert kit.update_participant(m.id, ada.id, picture=None).picture is None

    token = kit.refresh_participant_token(m.id, ada.id)
    assert isinstance(token, str) and token != ada.token
    assert kit.request("POST", "/_local/verify-token", json={"token": token})["data"]["valid"]

    removed = kit.delete_participant(m.id, bob.id)
    assert removed.id == bob.id
    with pytest.raises(RealtimeKitNotFoundError):
        kit.get_participant(m.id, bob.id)
    assert [p.id for p in kit.iter_participants(m.id)] == [ada.id]


def test_presets(kit: RealtimeKit) -> None:
    presets = list(kit.iter_presets(per_page=2))
    names = [p.name for p in presets]
    assert HOST in names and GUEST in names and len(set(names)) == len(names)
    page = kit.list_presets()
    assert [p.name for p in page] == names and page.paging.total_count == len(names)
    assert all(p.id for p in presets)


def test_raw_request_escape_hatch(kit: RealtimeKit) -> None:
    body = kit.request("get", "presets", params={"per_page": 1})
    assert body["success"] is True and len(body["data"]) == 1 and "paging" in body
    created = kit.request("POST", "/meetings", json={"title": "raw"})
    assert created["data"]["title"] == "raw"
    with pytest.raises(RealtimeKitNotFoundError) as info:
        kit.request("GET", "/sessions")
    assert info.value.upstream_code == 7000
    with pytest.raises(RealtimeKitBadRequestError):
        kit.request("DELETE", "/presets")


# -- errors ----------------------------------------------------------------------------------------
def test_bad_input_maps_to_bad_request_with_upstream_details(kit: RealtimeKit) -> None:
    with pytest.raises(RealtimeKitBadRequestError) as info:
        kit.create_meeting(status="OPEN")
    err = info.value
    assert isinstance(err, BadRequestError) and isinstance(err, ValueError)
    assert err.status_code == 400 and err.upstream_code == 400
    assert err.upstream_message is not None and '"status"' in err.upstream_message
    m = kit.create_meeting()
    with pytest.raises(RealtimeKitBadRequestError) as info:
        kit.add_participant(m.id, preset_name="nobody")
    assert HOST in str(info.value)
    with pytest.raises(RealtimeKitBadRequestError):
        kit.create_meeting(extra={"colour": "red"})


def test_inactive_meeting_refuses_participants(kit: RealtimeKit) -> None:
    m = kit.create_meeting("closed", status="INACTIVE")
    with pytest.raises(RealtimeKitBadRequestError) as info:
        kit.add_participant(m.id, preset_name=HOST)
    assert "INACTIVE" in str(info.value)
    kit.update_meeting(m.id, status="ACTIVE")
    assert kit.add_participant(m.id, preset_name=HOST).token


def test_client_side_argument_checks_send_nothing(kit: RealtimeKit) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        kit.get_meeting(42)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError):
        kit.get_meeting("")
    with pytest.raises(BadRequestError):
        kit.list_meetings(per_page=0)
    with pytest.raises(BadRequestError):
        kit.list_meetings(per_page=101)
    with pytest.raises(InvalidArgumentTypeError):
        kit.list_participants("m", page_no=True)
    with pytest.raises(InvalidArgumentTypeError):
        kit.add_participant("m", preset_name=HOST, name=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError):
        kit.request("GET", 5)  # type: ignore[arg-type]


def test_ids_are_quoted_into_the_path(kit: RealtimeKit) -> None:
    with pytest.raises(RealtimeKitNotFoundError) as info:
        kit.get_meeting("a/../../presets")
    assert "a/../../presets" in str(info.value)


def test_proxy_errors_keep_their_own_types(server: Any) -> None:
    key = "k_rtk_client_unprovisioned"
    server.add_key(key, provision=False)
    client, rtk = make_rtk(server.base_url, key)
    with client:
        with pytest.raises(NotProvisionedError) as info:
            rtk.list_meetings()
        assert not isinstance(info.value, RealtimeKitError)
    client, rtk = make_rtk(server.base_url, "k_rtk_nobody")
    with client:
        with pytest.raises(AuthError):
            rtk.list_presets()


def test_ephemeral_cap_surfaces_as_not_provisioned(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=0, tier="ephemeral")
    client, rtk = make_rtk(srv.base_url)
    with client:
        m = rtk.create_meeting()
        for i in range(10):
            rtk.add_participant(m.id, preset_name=GUEST, name=f"p{i}")
        with pytest.raises(NotProvisionedError) as info:
            rtk.add_participant(m.id, preset_name=GUEST)
        assert "participant tokens" in str(info.value)


def test_realtime_deletion_removes_meetings_seen_by_the_client(make_server: Any) -> None:
    srv = make_server(rtk_delay_ms=0)
    client, rtk = make_rtk(srv.base_url)
    with client:
        m = rtk.create_meeting("gone soon")
        client.deprovision()
        client.provision()
        assert list(rtk.iter_meetings()) == []
        with pytest.raises(RealtimeKitNotFoundError):
            rtk.get_meeting(m.id)


# -- pure pieces --------------------------------------------------------------------------------
def test_values_parse_the_wire_shapes() -> None:
    m = Meeting.from_wire(
        {"id": "m", "created_at": "2019-12-27T18:11:19.117Z", "status": "INACTIVE", "x": 1}
    )
    assert m.created_at == datetime.datetime(
        2019, 12, 27, 18, 11, 19, 117000, tzinfo=datetime.timezone.utc
    )
    assert not m.active and m.raw["x"] == 1 and m.title is None
    assert Meeting.from_wire({"id": "m", "created_at": "yesterday"}).created_at is None
    assert repr(UNSET) == "UNSET" and not UNSET


def test_upstream_status_decides_the_error_class() -> None:
    from cohrt_sync.errors import ServerError
    from cohrt_sync.realtimekit import RealtimeKitServerError, _to_realtimekit_error

    body = '{"success":false,"errors":[{"code":10000,"message":"upstream down"}],"data":null}'
    failed = ServerError("get meeting m failed: " + body, status_code=503, retry_after=2.0)
    failed.body = json.loads(body)
    mapped = _to_realtimekit_error(failed, "get meeting m")
    assert isinstance(mapped, RealtimeKitServerError) and isinstance(mapped, ServerError)
    assert mapped.retry_after == 2.0 and mapped.upstream_code == 10000
    assert mapped.__cause__ is failed and "upstream down" in str(mapped)
    # The proxy's own refusals are never re-labelled as RealtimeKit's.
    denied = NotProvisionedError("get meeting m failed: " + body, status_code=403)
    assert _to_realtimekit_error(denied, "get meeting m") is denied


def test_pages_without_paging_continue_while_full() -> None:
    from cohrt_sync.realtimekit import Paging

    assert Page(items=(1, 2), paging=Paging(), page_no=1, per_page=2).has_next
    assert not Page(items=(1,), paging=Paging(), page_no=1, per_page=2).has_next
    assert not Page(items=(), paging=Paging(5, 0, 0), page_no=9, per_page=2).has_next
    assert not Page(items=(1, 2), paging=Paging(2, 1, 2), page_no=1, per_page=2).has_next
