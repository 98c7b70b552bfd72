"""The :class:`RealtimeKit` wrapper: typed calls over the client's HTTP layer.

One class for one job, the RealtimeKit API: meetings (list, create, read,
change), participants and the presets they join under, and
:meth:`RealtimeKit.request`, the way to any path not wrapped; over the shared
plumbing of :mod:`.transport`. Meeting creation is eventually consistent, so
:meth:`RealtimeKit.create_meeting` polls the new meeting
(:meth:`RealtimeKit.wait_ready`) until it resolves; a participant joins a
meeting with the ``token`` it is given when added, under a preset (its role).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

from .._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport
from ..errors import CohrtError, InvalidArgumentTypeError
from .errors import MeetingNotReadyError, RealtimeKitNotFoundError
from .transport import (
    MAX_PER_PAGE,
    PREFIX,
    check_id,
    check_page,
    fetch_page,
    given,
    iterate,
    page_params,
    retry_not_found,
    segment,
    send,
    unwrap,
)
from .values import DEFAULT_POLL, UNSET, Meeting, Page, Participant, PollSchedule, Preset

__all__ = ["MAX_PER_PAGE", "PREFIX", "RealtimeKit"]


def _participants_path(meeting_id: str, participant_id: Optional[str] = None) -> str:
    path = f"/meetings/{segment(check_id(meeting_id, 'meeting_id'))}/participants"
    if participant_id is not None:
        path += "/" + segment(check_id(participant_id, "participant_id"))
    return path


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

    # -- meetings ------------------------------------------------------------------------------

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
        params = page_params(page_no, per_page, search=search, status=status)
        return fetch_page(self._http, "/meetings", params, Meeting.from_wire, "list meetings")

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
        check_page(1, per_page)
        return iterate(
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
        body.update(
            given(
                None,
                title=title,
                status=status,
                record_on_start=record_on_start,
                live_stream_on_start=live_stream_on_start,
                persist_chat=persist_chat,
                summarize_on_end=summarize_on_end,
                session_keep_alive_time_in_secs=session_keep_alive_time_in_secs,
                ai_config=None if ai_config is None else dict(ai_config),
            )
        )
        context = "create meeting"
        envelope = send(
            self._http,
            "POST",
            "/meetings",
            json_body=body,
            retry_mode=RETRY_UNSENT,
            context=context,
        )
        meeting = Meeting.from_wire(unwrap(envelope, context))
        if not wait_ready:
            return meeting
        return self.wait_ready(meeting.id, poll=poll)

    def wait_ready(self, meeting_id: str, *, poll: Optional[PollSchedule] = None) -> Meeting:
        """Poll ``GET /meetings/{id}`` until the meeting resolves.

        :param meeting_id: the meeting.
        :param poll: the schedule (default: this wrapper's :attr:`poll`).
        :raises MeetingNotReadyError: every read answered ``ResourceNotFound``.
        """
        check_id(meeting_id, "meeting_id")
        schedule = poll or self._poll
        try:
            return retry_not_found(schedule, self._sleep, lambda: self.get_meeting(meeting_id))
        except RealtimeKitNotFoundError as last:
            raise MeetingNotReadyError(
                f"meeting {meeting_id} was still not readable after {schedule.attempts} attempt(s)"
                f" {schedule.interval:g} s apart (last answer: {last.upstream_message})",
                meeting_id=meeting_id,
                attempts=schedule.attempts,
            ) from last

    def get_meeting(self, meeting_id: str) -> Meeting:
        """``GET /meetings/{id}``.

        :param meeting_id: the meeting.
        :raises RealtimeKitNotFoundError: unknown, or created too recently to read.
        """
        check_id(meeting_id, "meeting_id")
        context = f"get meeting {meeting_id}"
        envelope = send(
            self._http,
            "GET",
            f"/meetings/{segment(meeting_id)}",
            retry_mode=RETRY_ALWAYS,
            context=context,
        )
        return Meeting.from_wire(unwrap(envelope, context))

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
            given(
                UNSET,
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
        check_id(meeting_id, "meeting_id")
        context = f"{'update' if method == 'PATCH' else 'replace'} meeting {meeting_id}"
        envelope = send(
            self._http,
            method,
            f"/meetings/{segment(meeting_id)}",
            json_body=body,
            # Setting fields to given values is idempotent, so retrying is safe.
            retry_mode=RETRY_ALWAYS,
            context=context,
        )
        return Meeting.from_wire(unwrap(envelope, context))

    # -- participants --------------------------------------------------------------------------
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
        path = _participants_path(meeting_id)
        return fetch_page(
            self._http,
            path,
            page_params(page_no, per_page, search=search),
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
        _participants_path(meeting_id)
        check_page(1, per_page)
        return iterate(
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
        path = _participants_path(meeting_id)
        check_id(preset_name, "preset_name")
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
        context = f"add participant to meeting {meeting_id}"
        envelope = retry_not_found(
            poll or self._poll,
            self._sleep,
            lambda: send(
                self._http, "POST", path, json_body=body, retry_mode=RETRY_UNSENT, context=context
            ),
        )
        return Participant.from_wire(unwrap(envelope, context), meeting_id)

    def get_participant(self, meeting_id: str, participant_id: str) -> Participant:
        """``GET /meetings/{id}/participants/{pid}`` (no token: tokens are shown once).

        :param meeting_id: the meeting.
        :param participant_id: the participant.
        """
        path = _participants_path(meeting_id, participant_id)
        context = f"get participant {participant_id}"
        envelope = send(self._http, "GET", path, retry_mode=RETRY_ALWAYS, context=context)
        return Participant.from_wire(unwrap(envelope, context), meeting_id)

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
        path = _participants_path(meeting_id, participant_id)
        context = f"update participant {participant_id}"
        envelope = send(
            self._http,
            "PATCH",
            path,
            json_body=given(UNSET, name=name, picture=picture, preset_name=preset_name),
            # It mints a token, which counts against the ephemeral tier's cap.
            retry_mode=RETRY_UNSENT,
            context=context,
        )
        return Participant.from_wire(unwrap(envelope, context), meeting_id)

    def delete_participant(self, meeting_id: str, participant_id: str) -> Participant:
        """Remove a participant (``DELETE``); its tokens stop working.

        :param meeting_id: the meeting.
        :param participant_id: the participant.
        :returns: the removed participant.
        """
        path = _participants_path(meeting_id, participant_id)
        context = f"delete participant {participant_id}"
        # A blind retry after a lost answer would report a successful delete as 404.
        envelope = send(self._http, "DELETE", path, retry_mode=RETRY_UNSENT, context=context)
        return Participant.from_wire(unwrap(envelope, context), meeting_id)

    def refresh_participant_token(self, meeting_id: str, participant_id: str) -> str:
        """A fresh auth token for a participant (``POST .../token``).

        :param meeting_id: the meeting (must be ``ACTIVE``).
        :param participant_id: the participant.
        """
        path = _participants_path(meeting_id, participant_id) + "/token"
        context = f"refresh token of participant {participant_id}"
        envelope = send(self._http, "POST", path, retry_mode=RETRY_UNSENT, context=context)
        token = unwrap(envelope, context).get("token")
        if not isinstance(token, str) or not token:
            raise CohrtError(f"{context}: the response carried no token")
        return token

    # -- presets -------------------------------------------------------------------------------
    def list_presets(self, *, page_no: int = 1, per_page: int = MAX_PER_PAGE) -> Page[Preset]:
        """One page of the app's presets (the names ``preset_name`` accepts).

        :param page_no: page number, from 1.
        :param per_page: presets per page, 1 to 100.
        """
        params = page_params(page_no, per_page)
        return fetch_page(self._http, "/presets", params, Preset.from_wire, "list presets")

    def iter_presets(self, *, per_page: int = MAX_PER_PAGE) -> Iterator[Preset]:
        """Every preset, page by page, lazily.

        :param per_page: presets per request, 1 to 100.
        """
        check_page(1, per_page)
        return iterate(lambda n: self.list_presets(page_no=n, per_page=per_page))

    # -- any other path --------------------------------------------------------------------------

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
        return send(
            self._http,
            method,
            path,
            json_body=json,
            params=params,
            retry_mode=RETRY_ALWAYS if idempotent else RETRY_UNSENT,
            context=f"RealtimeKit {method} {path}",
        )
