"""The participant and preset calls of :class:`~cohrt_sync.realtimekit.RealtimeKit`.

A participant joins a meeting with the ``token`` it is given when added, under a
preset (its role) named by the app's presets, listed here too.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional

from .._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport
from ..errors import CohrtError, InvalidArgumentTypeError
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
from .values import UNSET, Page, Participant, PollSchedule, Preset

__all__ = ["ParticipantCalls"]


def _participants_path(meeting_id: str, participant_id: Optional[str] = None) -> str:
    path = f"/meetings/{segment(check_id(meeting_id, 'meeting_id'))}/participants"
    if participant_id is not None:
        path += "/" + segment(check_id(participant_id, "participant_id"))
    return path


class ParticipantCalls:
    """``/meetings/{id}/participants`` and ``/presets``: a part of
    :class:`~cohrt_sync.realtimekit.RealtimeKit`."""

    _http: HttpTransport
    _poll: PollSchedule
    _sleep: Callable[[float], None]

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
