"""The meeting calls of :class:`~cohrt_sync.realtimekit.RealtimeKit`: list, create, read, change.

Meeting creation is eventually consistent, so :meth:`MeetingCalls.create_meeting`
polls the new meeting (:meth:`MeetingCalls.wait_ready`) until it resolves.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Mapping, Optional

from .._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport
from .errors import MeetingNotReadyError, RealtimeKitNotFoundError
from .transport import (
    MAX_PER_PAGE,
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
from .values import UNSET, Meeting, Page, PollSchedule

__all__ = ["MeetingCalls"]


class MeetingCalls:
    """``/meetings``: a part of :class:`~cohrt_sync.realtimekit.RealtimeKit`."""

    _http: HttpTransport
    _poll: PollSchedule
    _sleep: Callable[[float], None]

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
