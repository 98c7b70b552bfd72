"""The values RealtimeKit calls return: frozen, built from the API's objects.

:class:`Meeting`, :class:`Participant`, :class:`Preset`, one :class:`Page` of
a list with its :class:`Paging`, the :class:`PollSchedule` of eventually
consistent reads, and :data:`UNSET` for update arguments not given.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any, Generic, Iterator, Mapping, Optional, Tuple, TypeVar

import attrs

from ..errors import BadRequestError

__all__ = [
    "DEFAULT_POLL",
    "UNSET",
    "Meeting",
    "Page",
    "Paging",
    "Participant",
    "PollSchedule",
    "Preset",
]

T = TypeVar("T")


class _Unset:
    """Marks an argument that was not given (``None`` can be a real value: null)."""

    _instance: Optional[_Unset] = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: Default of update arguments: leave the field as it is.
UNSET: Any = _Unset()



def _time(value: Any) -> Optional[datetime.datetime]:
    """An ISO-8601 timestamp (``...Z`` included) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    # Python 3.9's parser takes 3 or 6 fraction digits only.
    text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _bool(value: Any) -> bool:
    return bool(value) if value is not None else False


@attrs.frozen
class Meeting:
    """A RealtimeKit meeting: a reusable room.

    :param id: the meeting id (a UUID).
    :param title: its title, or None.
    :param status: ``"ACTIVE"`` or ``"INACTIVE"`` (no one can join an inactive one).
    :param record_on_start: record as soon as someone joins.
    :param live_stream_on_start: live-stream as soon as someone joins.
    :param persist_chat: keep the chat for a week.
    :param summarize_on_end: summarise the transcript at the end.
    :param transcribe_on_end: transcribe at the end.
    :param session_keep_alive_time_in_secs: how long a session outlives its last participant.
    :param ai_config: transcription and summary settings.
    :param created_at: creation time (aware, UTC).
    :param updated_at: last update time (aware, UTC).
    :param raw: the object as the API sent it, for fields not wrapped here.
    """

    id: str
    title: Optional[str] = None
    status: str = "ACTIVE"
    record_on_start: bool = False
    live_stream_on_start: bool = False
    persist_chat: bool = False
    summarize_on_end: bool = False
    transcribe_on_end: bool = False
    session_keep_alive_time_in_secs: Optional[float] = None
    ai_config: Optional[Mapping[str, Any]] = attrs.field(default=None, hash=False)
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @property
    def active(self) -> bool:
        """True when participants can be added and join."""
        return self.status == "ACTIVE"

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Meeting:
        """Build from the API's meeting object.

        :param raw: the decoded ``data`` object.
        """
        keep_alive = raw.get("session_keep_alive_time_in_secs")
        ai_config = raw.get("ai_config")
        return cls(
            id=str(raw.get("id") or ""),
            title=_opt_str(raw.get("title")),
            status=str(raw.get("status") or "ACTIVE"),
            record_on_start=_bool(raw.get("record_on_start")),
            live_stream_on_start=_bool(raw.get("live_stream_on_start")),
            persist_chat=_bool(raw.get("persist_chat")),
            summarize_on_end=_bool(raw.get("summarize_on_end")),
            transcribe_on_end=_bool(raw.get("transcribe_on_end")),
            session_keep_alive_time_in_secs=(
                keep_alive
                if isinstance(keep_alive, (int, float)) and not isinstance(keep_alive, bool)
                else None
            ),
            ai_config=ai_config if isinstance(ai_config, dict) else None,
            created_at=_time(raw.get("created_at")),
            updated_at=_time(raw.get("updated_at")),
            raw=dict(raw),
        )


@attrs.frozen
class Participant:
    """A participant of a meeting.

    :param id: the participant id.
    :param meeting_id: the meeting it belongs to.
    :param preset_name: the preset (role) applied to it.
    :param name: display name, or None.
    :param picture: picture URL, or None.
    :param custom_participant_id: your own id for this user.
    :param token: the auth token for the frontend SDK: only on create, update
        and :meth:`RealtimeKit.refresh_participant_token`; None on reads.
        Never shown in the repr.
    :param created_at: creation time (aware, UTC).
    :param updated_at: last update time (aware, UTC).
    :param raw: the object as the API sent it (the token removed).
    """

    id: str
    meeting_id: str
    preset_name: Optional[str] = None
    name: Optional[str] = None
    picture: Optional[str] = None
    custom_participant_id: Optional[str] = None
    token: Optional[str] = attrs.field(default=None, repr=False)
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any], meeting_id: str) -> Participant:
        """Build from the API's participant object.

        :param raw: the decoded ``data`` object.
        :param meeting_id: the meeting of the request.
        """
        token = raw.get("token")
        return cls(
            id=str(raw.get("id") or ""),
            meeting_id=meeting_id,
            preset_name=_opt_str(raw.get("preset_name")),
            name=_opt_str(raw.get("name")),
            picture=_opt_str(raw.get("picture")),
            custom_participant_id=_opt_str(raw.get("custom_participant_id")),
            token=token if isinstance(token, str) else None,
            created_at=_time(raw.get("created_at")),
            updated_at=_time(raw.get("updated_at")),
            raw={k: v for k, v in raw.items() if k != "token"},
        )


@attrs.frozen
class Preset:
    """A preset: a named participant role (permissions, media, UI).

    :param id: the preset id.
    :param name: what ``preset_name`` refers to.
    :param created_at: creation time, if given.
    :param updated_at: last update time, if given.
    :param raw: the object as the API sent it.
    """

    id: Optional[str]
    name: str
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Preset:
        """Build from the API's preset object.

        :param raw: the decoded object.
        """
        return cls(
            id=_opt_str(raw.get("id")),
            name=str(raw.get("name") or ""),
            created_at=_time(raw.get("created_at")),
            updated_at=_time(raw.get("updated_at")),
            raw=dict(raw),
        )


@attrs.frozen
class Paging:
    """The ``paging`` object of a list: 1-based, inclusive offsets.

    :param total_count: items matching, over all pages.
    :param start_offset: position of this page's first item (0 when empty).
    :param end_offset: position of this page's last item (0 when empty).
    """

    total_count: int = 0
    start_offset: int = 0
    end_offset: int = 0

    @classmethod
    def from_wire(cls, raw: Any) -> Paging:
        """Build from the response's ``paging`` (missing fields count as 0).

        :param raw: the decoded object.
        """
        if not isinstance(raw, dict):
            return cls()

        def num(key: str) -> int:
            value = raw.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return 0
            return int(value) if math.isfinite(value) else 0

        return cls(num("total_count"), num("start_offset"), num("end_offset"))


@attrs.frozen
class Page(Generic[T]):
    """One page of a list.

    :param items: this page's values.
    :param paging: where the page sits in the whole list.
    :param page_no: the page number asked for (1-based).
    :param per_page: the page size asked for.
    """

    items: Tuple[T, ...]
    paging: Paging
    page_no: int
    per_page: int

    @property
    def has_next(self) -> bool:
        """True when items remain after this page.

        Without a ``paging`` object in the answer, a full page suggests more.
        """
        if not self.items:
            return False
        if self.paging == Paging():
            return len(self.items) >= self.per_page
        return self.paging.end_offset < self.paging.total_count

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@attrs.frozen
class PollSchedule:
    """How to poll for a new meeting: ``attempts`` reads, ``interval`` seconds apart.

    :param attempts: reads to try, at least 1.
    :param interval: seconds between reads.
    """

    attempts: int = attrs.field(default=5)
    interval: float = attrs.field(default=0.2)

    @attempts.validator
    def _check_attempts(self, _: Any, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequestError("attempts must be an int of at least 1")

    @interval.validator
    def _check_interval(self, _: Any, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise BadRequestError("interval must be a number of seconds, at least 0")


#: The spec's suggestion: 5 attempts, 200 ms apart.
DEFAULT_POLL = PollSchedule()
