"""The :class:`RealtimeKit` wrapper: typed calls over the client's HTTP layer."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, TypeVar

from .._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport, encode_json
from ..errors import BadRequestError, CohrtError, InvalidArgumentTypeError
from .errors import (
    MeetingNotReadyError,
    RealtimeKitError,
    RealtimeKitNotFoundError,
    _parse_errors,
    _to_realtimekit_error,
)
from .values import DEFAULT_POLL, UNSET, Meeting, Page, Paging, Participant, PollSchedule, Preset

__all__ = ["MAX_PER_PAGE", "PREFIX", "RealtimeKit"]

T = TypeVar("T")

#: The proxy prefix that stands for Cloudflare's ``/accounts/{account}/realtime/kit/{app}``.
PREFIX = "/edge/realtimekit"
#: Largest ``per_page`` the API accepts.
MAX_PER_PAGE = 100


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise BadRequestError(f"{name} must not be empty")
    return value


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _check_page(page_no: Any, per_page: Any) -> None:
    for name, value, hi in (("page_no", page_no, None), ("per_page", per_page, MAX_PER_PAGE)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentTypeError(f"{name} must be an int")
        if value < 1 or (hi is not None and value > hi):
            raise BadRequestError(
                f"{name} must be from 1 to {hi}" if hi else f"{name} must be >= 1"
            )


def _given(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not UNSET}


class RealtimeKit:
    """Typed RealtimeKit calls over the client's shared HTTP layer.

    Get one from ``client.realtimekit``, or build one over a client's transport.

    :param http: the client's HTTP layer (auth, retries, redaction).
    :param poll: the poll-after-create schedule (default 5 reads, 200 ms apart).
    :param sleep: how to wait between polls; inject a fake one in tests.
    """

    def __init__(
        self,
        http: HttpTransport,
        *,
        poll: PollSchedule = DEFAULT_POLL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(poll, PollSchedule):
            raise InvalidArgumentTypeError("poll must be a PollSchedule")
        self._http = http
        self._poll = poll
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<cohrt_sync.RealtimeKit {self._http.base_url}{PREFIX}>"

    @property
    def poll(self) -> PollSchedule:
        """The default poll-after-create schedule (read-only: see :meth:`configured`)."""
        return self._poll

    def configured(
        self,
        *,
        poll: Optional[PollSchedule] = None,
        sleep: Optional[Callable[[float], None]] = None,
    ) -> RealtimeKit:
        """A new wrapper over the same HTTP layer with another schedule or wait.

        This one is left as it is, so keep the result:
        ``rtk = client.realtimekit.configured(poll=...)``.

        :param poll: the new default schedule (unchanged when None).
        :param sleep: the new wait function (unchanged when None).
        """
        return RealtimeKit(self._http, poll=poll or self._poll, sleep=sleep or self._sleep)

    # -- plumbing -----------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Optional[Mapping[str, Any]] = None,
        retry_mode: str,
        context: str,
    ) -> Dict[str, Any]:
        body = None if json_body is None else encode_json(json_body)
        try:
            raw = self._http.request(
                method,
                PREFIX + path,
                params=params,
                body=body,
                retry_mode=retry_mode,
                context=context,
            )
        except CohrtError as e:
            mapped = _to_realtimekit_error(e, context)
            if mapped is e:
                raise
            raise mapped from e
        if not isinstance(raw, dict):
            raise CohrtError(f"{context}: expected a JSON object, got {type(raw).__name__}")
        if raw.get("success") is False:
            errors = _parse_errors(raw.get("errors"))
            raise RealtimeKitError(
                f"{context} failed: " + "; ".join(e.message for e in errors), errors=errors
            )
        return raw

    def _data(self, envelope: Mapping[str, Any], context: str) -> Dict[str, Any]:
        data = envelope.get("data")
        if not isinstance(data, dict):
            raise CohrtError(f"{context}: the response carried no data object")
        return data

    def _page(
        self,
        path: str,
        params: Dict[str, Any],
        build: Callable[[Mapping[str, Any]], T],
        context: str,
    ) -> Page[T]:
        envelope = self._send("GET", path, params=params, retry_mode=RETRY_ALWAYS, context=context)
        data = envelope.get("data")
        items = tuple(
            build(x) for x in (data if isinstance(data, list) else []) if isinstance(x, dict)
        )
        return Page(
            items=items,
            paging=Paging.from_wire(envelope.get("paging")),
            page_no=int(params["page_no"]),
            per_page=int(params["per_page"]),
        )

    @staticmethod
    def _all(fetch: Callable[[int], Page[T]]) -> Iterator[T]:
        page_no = 1
        while True:
            page = fetch(page_no)
            yield from page.items
            if not page.has_next:
                return
            page_no += 1

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Call any RealtimeKit path not wrapped here; returns the whole envelope.

        GET, HEAD and PUT are retried freely; other methods only where the
        request provably did not arrive.

        :param method: HTTP method.
        :param path: the path after the proxy prefix, e.g. ``"/sessions"``.
        :param json: a JSON body.
        :param params: query parameters.
        :raises RealtimeKitError: when RealtimeKit answers with ``errors``.
        """
        if not isinstance(method, str) or not method:
            raise InvalidArgumentTypeError("method must be a non-empty str")
        if not isinstance(path, str):
            raise InvalidArgumentTypeError("path must be a str")
        method = method.upper()
        path = path if path.startswith("/") else "/" + path
        idempotent = method in ("GET", "HEAD", "PUT")
        return self._send(
            method,
            path,
            json_body=json,
            params=params,
            retry_mode=RETRY_ALWAYS if idempotent else RETRY_UNSENT,
            context=f"RealtimeKit {method} {path}",
        )

    # -- meetings -------------------------------------------------------------------------------
    def list_meetings(
        self,
        *,
        page_no: int = 1,
        per_page: int = 20,
        search: Optional[str] = None,
        status: Optional[str] = None,
    ) -> Page[Meeting]:
        """One page of the app's meetings.

        :param page_no: page number, from 1.
        :param per_page: meetings per page, 1 to 100.
        :param search: match meeting id or title.
        :param status: only ``"ACTIVE"`` or ``"INACTIVE"`` meetings.
        """
        _check_page(page_no, per_page)
        params: Dict[str, Any] = {"page_no": page_no, "per_page": per_page}
        if search is not None:
            params["search"] = search
        if status is not None:
            params["status"] = status
        return self._page("/meetings", params, Meeting.from_wire, "list meetings")

    def iter_meetings(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        search: Optional[str] = None,
        status: Optional[str] = None,
    ) -> Iterator[Meeting]:
        """Every meeting, page by page, lazily.

        :param per_page: meetings per request, 1 to 100.
        :param search: match meeting id or title.
        :param status: only ``"ACTIVE"`` or ``"INACTIVE"`` meetings.
        """
        _check_page(1, per_page)
        return self._all(
            lambda n: self.list_meetings(page_no=n, per_page=per_page, search=search, status=status)
        )

    def create_meeting(
        self,
        title: Optional[str] = None,
        *,
        status: Optional[str] = None,
        record_on_start: Optional[bool] = None,
        live_stream_on_start: Optional[bool] = None,
        persist_chat: Optional[bool] = None,
        summarize_on_end: Optional[bool] = None,
        session_keep_alive_time_in_secs: Optional[float] = None,
        ai_config: Optional[Mapping[str, Any]] = None,
        extra: Optional[Mapping[str, Any]] = None,
        wait_ready: bool = True,
        poll: Optional[PollSchedule] = None,
    ) -> Meeting:
        """Create a meeting (``POST /meetings``) and, by default, wait until it is readable.

        Arguments left as None are not sent (the API's defaults apply).
        Creation is not retried unless the request provably did not arrive,
        so a meeting is never created twice.

        :param title: the meeting's title.
        :param status: ``"ACTIVE"`` (default) or ``"INACTIVE"``.
        :param record_on_start: record as soon as someone joins.
        :param live_stream_on_start: live-stream as soon as someone joins.
        :param persist_chat: keep the chat for a week.
        :param summarize_on_end: summarise the transcript at the end.
        :param session_keep_alive_time_in_secs: 60 to 600.
        :param ai_config: ``{"summarization": {...}, "transcription": {...}}``.
        :param extra: more body fields, sent as given.
        :param wait_ready: poll ``GET /meetings/{id}`` until it resolves.
        :param poll: the schedule (default: this wrapper's :attr:`poll`).
        :raises MeetingNotReadyError: still not readable after the schedule;
            the meeting exists, so poll again with :meth:`wait_ready`.
        """
        body: Dict[str, Any] = dict(extra or {})
        given = {
            "title": title,
            "status": status,
            "record_on_start": record_on_start,
            "live_stream_on_start": live_stream_on_start,
            "persist_chat": persist_chat,
            "summarize_on_end": summarize_on_end,
            "session_keep_alive_time_in_secs": session_keep_alive_time_in_secs,
            "ai_config": None if ai_config is None else dict(ai_config),
        }
        body.update({k: v for k, v in given.items() if v is not None})
        envelope = self._send(
            "POST", "/meetings", json_body=body, retry_mode=RETRY_UNSENT, context="create meeting"
        )
        meeting = Meeting.from_wire(self._data(envelope, "create meeting"))
        if not wait_ready:
            return meeting
        return self.wait_ready(meeting.id, poll=poll)

    def wait_ready(self, meeting_id: str, *, poll: Optional[PollSchedule] = None) -> Meeting:
        """Poll ``GET /meetings/{id}`` until the meeting resolves.

        :param meeting_id: the meeting.
        :param poll: the schedule (default: this wrapper's :attr:`poll`).
        :raises MeetingNotReadyError: every read answered ``ResourceNotFound``.
        """
        _check_id(meeting_id, "meeting_id")
        schedule = poll or self._poll
        last: Optional[RealtimeKitNotFoundError] = None
        for attempt in range(schedule.attempts):
            if attempt:
                self._sleep(schedule.interval)
            try:
                return self.get_meeting(meeting_id)
            except RealtimeKitNotFoundError as e:
                last = e
        answer = last.upstream_message if last is not None else None
        raise MeetingNotReadyError(
            f"meeting {meeting_id} was still not readable after {schedule.attempts} attempt(s)"
            f" {schedule.interval:g} s apart (last answer: {answer})",
            meeting_id=meeting_id,
            attempts=schedule.attempts,
        ) from last

    def get_meeting(self, meeting_id: str) -> Meeting:
        """``GET /meetings/{id}``.

        :param meeting_id: the meeting.
        :raises RealtimeKitNotFoundError: unknown, or created too recently to read.
        """
        _check_id(meeting_id, "meeting_id")
        context = f"get meeting {meeting_id}"
        envelope = self._send(
            "GET", f"/meetings/{_seg(meeting_id)}", retry_mode=RETRY_ALWAYS, context=context
        )
        return Meeting.from_wire(self._data(envelope, context))

    def update_meeting(
        self,
        meeting_id: str,
        *,
        title: Optional[str] = UNSET,
        status: str = UNSET,
        record_on_start: bool = UNSET,
        live_stream_on_start: bool = UNSET,
        persist_chat: bool = UNSET,
        summarize_on_end: bool = UNSET,
        session_keep_alive_time_in_secs: float = UNSET,
        ai_config: Optional[Mapping[str, Any]] = UNSET,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> Meeting:
        """Change the given fields of a meeting (``PATCH /meetings/{id}``).

        Only the arguments you pass are sent; ``title=None`` clears the title.
        ``status="INACTIVE"`` stops anyone from joining.

        :param meeting_id: the meeting.
        :param title: new title (None clears it).
        :param status: ``"ACTIVE"`` or ``"INACTIVE"``.
        :param record_on_start: record as soon as someone joins.
        :param live_stream_on_start: live-stream as soon as someone joins.
        :param persist_chat: keep the chat for a week.
        :param summarize_on_end: summarise the transcript at the end.
        :param session_keep_alive_time_in_secs: 60 to 600.
        :param ai_config: new transcription and summary settings.
        :param extra: more body fields, sent as given.
        """
        body = dict(extra or {})
        body.update(
            _given(
                title=title,
                status=status,
                record_on_start=record_on_start,
                live_stream_on_start=live_stream_on_start,
                persist_chat=persist_chat,
                summarize_on_end=summarize_on_end,
                session_keep_alive_time_in_secs=session_keep_alive_time_in_secs,
                ai_config=ai_config,
            )
        )
        return self._write_meeting("PATCH", meeting_id, body)

    def replace_meeting(
        self,
        meeting_id: str,
        *,
        title: Optional[str] = None,
        status: str = "ACTIVE",
        record_on_start: bool = False,
        live_stream_on_start: bool = False,
        persist_chat: bool = False,
        summarize_on_end: bool = False,
        session_keep_alive_time_in_secs: Optional[float] = None,
        ai_config: Optional[Mapping[str, Any]] = None,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> Meeting:
        """Replace a meeting's settings (``PUT /meetings/{id}``): omitted ones reset.

        :param meeting_id: the meeting.
        :param title: the title (None: no title).
        :param status: ``"ACTIVE"`` or ``"INACTIVE"``.
        :param record_on_start: record as soon as someone joins.
        :param live_stream_on_start: live-stream as soon as someone joins.
        :param persist_chat: keep the chat for a week.
        :param summarize_on_end: summarise the transcript at the end.
        :param session_keep_alive_time_in_secs: 60 to 600 (None: the API's default).
        :param ai_config: transcription and summary settings (None: defaults).
        :param extra: more body fields, sent as given.
        """
        body: Dict[str, Any] = dict(extra or {})
        body.update(
            title=title,
            status=status,
            record_on_start=record_on_start,
            live_stream_on_start=live_stream_on_start,
            persist_chat=persist_chat,
            summarize_on_end=summarize_on_end,
        )
        if session_keep_alive_time_in_secs is not None:
            body["session_keep_alive_time_in_secs"] = session_keep_alive_time_in_secs
        if ai_config is not None:
            body["ai_config"] = dict(ai_config)
        return self._write_meeting("PUT", meeting_id, body)

    def _write_meeting(self, method: str, meeting_id: str, body: Dict[str, Any]) -> Meeting:
        _check_id(meeting_id, "meeting_id")
        context = f"{'update' if method == 'PATCH' else 'replace'} meeting {meeting_id}"
        envelope = self._send(
            method,
            f"/meetings/{_seg(meeting_id)}",
            json_body=body,
            # Setting fields to given values is idempotent, so retrying is safe.
            retry_mode=RETRY_ALWAYS,
            context=context,
        )
        return Meeting.from_wire(self._data(envelope, context))

    # -- participants --------------------------------------------------------------------------
    def _participants_path(self, meeting_id: str, participant_id: Optional[str] = None) -> str:
        path = f"/meetings/{_seg(_check_id(meeting_id, 'meeting_id'))}/participants"
        if participant_id is not None:
            path += "/" + _seg(_check_id(participant_id, "participant_id"))
        return path

    def list_participants(
        self,
        meeting_id: str,
        *,
        page_no: int = 1,
        per_page: int = 20,
        search: Optional[str] = None,
    ) -> Page[Participant]:
        """One page of a meeting's participants.

        :param meeting_id: the meeting.
        :param page_no: page number, from 1.
        :param per_page: participants per page, 1 to 100.
        :param search: match name or id (a local-server extension).
        """
        path = self._participants_path(meeting_id)
        _check_page(page_no, per_page)
        params: Dict[str, Any] = {"page_no": page_no, "per_page": per_page}
        if search is not None:
            params["search"] = search
        return self._page(
            path,
            params,
            lambda raw: Participant.from_wire(raw, meeting_id),
            f"list participants of {meeting_id}",
        )

    def iter_participants(
        self, meeting_id: str, *, per_page: int = MAX_PER_PAGE, search: Optional[str] = None
    ) -> Iterator[Participant]:
        """Every participant of a meeting, page by page, lazily.

        :param meeting_id: the meeting.
        :param per_page: participants per request, 1 to 100.
        :param search: match name or id.
        """
        self._participants_path(meeting_id)
        _check_page(1, per_page)
        return self._all(
            lambda n: self.list_participants(
                meeting_id, page_no=n, per_page=per_page, search=search
            )
        )

    def add_participant(
        self,
        meeting_id: str,
        *,
        preset_name: str,
        name: Optional[str] = None,
        picture: Optional[str] = None,
        custom_participant_id: Optional[str] = None,
        poll: Optional[PollSchedule] = None,
    ) -> Participant:
        """Add a participant (``POST /meetings/{id}/participants``); its ``token`` joins.

        A ``ResourceNotFound`` is retried on the poll schedule, since a meeting
        created moments ago (perhaps by another process) may not resolve yet;
        the refusal did not create anything, so retrying is safe.

        :param meeting_id: the meeting (must be ``ACTIVE``).
        :param preset_name: a preset from :meth:`list_presets`.
        :param name: display name.
        :param picture: picture URL.
        :param custom_participant_id: your own id for this user.
        :param poll: the retry schedule (default: this wrapper's :attr:`poll`).
        :raises RealtimeKitNotFoundError: the meeting never resolved.
        :raises RealtimeKitBadRequestError: bad input, or an ``INACTIVE`` meeting.
        """
        path = self._participants_path(meeting_id)
        _check_id(preset_name, "preset_name")
        body: Dict[str, Any] = {"preset_name": preset_name}
        for key, value in (
            ("name", name),
            ("picture", picture),
            ("custom_participant_id", custom_participant_id),
        ):
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidArgumentTypeError(f"{key} must be a str or None")
                body[key] = value
        schedule = poll or self._poll
        context = f"add participant to meeting {meeting_id}"
        for attempt in range(schedule.attempts):
            if attempt:
                self._sleep(schedule.interval)
            try:
                envelope = self._send(
                    "POST", path, json_body=body, retry_mode=RETRY_UNSENT, context=context
                )
            except RealtimeKitNotFoundError:
                if attempt + 1 >= schedule.attempts:
                    raise
                continue
            return Participant.from_wire(self._data(envelope, context), meeting_id)
        raise AssertionError("unreachable: the schedule has at least one attempt")

    def get_participant(self, meeting_id: str, participant_id: str) -> Participant:
        """``GET /meetings/{id}/participants/{pid}`` (no token: tokens are shown once).

        :param meeting_id: the meeting.
        :param participant_id: the participant.
        """
        path = self._participants_path(meeting_id, participant_id)
        context = f"get participant {participant_id}"
        envelope = self._send("GET", path, retry_mode=RETRY_ALWAYS, context=context)
        return Participant.from_wire(self._data(envelope, context), meeting_id)

    def update_participant(
        self,
        meeting_id: str,
        participant_id: str,
        *,
        name: Optional[str] = UNSET,
        picture: Optional[str] = UNSET,
        preset_name: str = UNSET,
    ) -> Participant:
        """Change a participant (``PATCH``); the answer carries a fresh token.

        :param meeting_id: the meeting.
        :param participant_id: the participant.
        :param name: new display name (None clears it).
        :param picture: new picture URL (None clears it).
        :param preset_name: new preset.
        """
        path = self._participants_path(meeting_id, participant_id)
        context = f"update participant {participant_id}"
        envelope = self._send(
            "PATCH",
            path,
            json_body=_given(name=name, picture=picture, preset_name=preset_name),
            # It mints a token, which counts against the ephemeral tier's cap.
            retry_mode=RETRY_UNSENT,
            context=context,
        )
        return Participant.from_wire(self._data(envelope, context), meeting_id)

    def delete_participant(self, meeting_id: str, participant_id: str) -> Participant:
        """Remove a participant (``DELETE``); its tokens stop working.

        :param meeting_id: the meeting.
        :param participant_id: the participant.
        :returns: the removed participant.
        """
        path = self._participants_path(meeting_id, participant_id)
        context = f"delete participant {participant_id}"
        # A blind retry after a lost answer would report a successful delete as 404.
        envelope = self._send("DELETE", path, retry_mode=RETRY_UNSENT, context=context)
        return Participant.from_wire(self._data(envelope, context), meeting_id)

    def refresh_participant_token(self, meeting_id: str, participant_id: str) -> str:
        """A fresh auth token for a participant (``POST .../token``).

        :param meeting_id: the meeting (must be ``ACTIVE``).
        :param participant_id: the participant.
        """
        path = self._participants_path(meeting_id, participant_id) + "/token"
        context = f"refresh token of participant {participant_id}"
        envelope = self._send("POST", path, retry_mode=RETRY_UNSENT, context=context)
        token = self._data(envelope, context).get("token")
        if not isinstance(token, str) or not token:
            raise CohrtError(f"{context}: the response carried no token")
        return token

    # -- presets -------------------------------------------------------------------------------
    def list_presets(self, *, page_no: int = 1, per_page: int = MAX_PER_PAGE) -> Page[Preset]:
        """One page of the app's presets (the names ``preset_name`` accepts).

        :param page_no: page number, from 1.
        :param per_page: presets per page, 1 to 100.
        """
        _check_page(page_no, per_page)
        params = {"page_no": page_no, "per_page": per_page}
        return self._page("/presets", params, Preset.from_wire, "list presets")

    def iter_presets(self, *, per_page: int = MAX_PER_PAGE) -> Iterator[Preset]:
        """Every preset, page by page, lazily.

        :param per_page: presets per request, 1 to 100.
        """
        _check_page(1, per_page)
        return self._all(lambda n: self.list_presets(page_no=n, per_page=per_page))
