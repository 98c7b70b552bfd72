"""What RealtimeKit accepts: limits, field checks, paging parameters and the defaults they fill.

Every check raises a 400 :class:`~.envelope.RtkError` whose message names the
bad field, as Cloudflare's does.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import attrs
from aiohttp import web

from .envelope import bad

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_TITLE = 1024
MAX_NAME = 256
MAX_URL = 2048
MAX_CUSTOM_ID = 256
MAX_SEARCH = 256
KEEP_ALIVE_DEFAULT = 60
KEEP_ALIVE_MIN = 60
KEEP_ALIVE_MAX = 600
STATUSES = ("ACTIVE", "INACTIVE")
SUMMARY_TYPES = (
    "general",
    "team_meeting",
    "sales_call",
    "client_check_in",
    "interview",
    "daily_standup",
    "one_on_one_meeting",
    "lecture",
    "code_review",
)
TEXT_FORMATS = ("plain_text", "markdown")
LANGUAGES = ("en-US", "en-IN", "de", "hi", "sv", "ru", "pl", "el", "fr", "nl")
WORD_LIMIT_MIN = 150
WORD_LIMIT_MAX = 1000
#: The default presets of a new app; ``preset_name`` must name one of them.
PRESET_NAMES = (
    "group_call_host",
    "group_call_participant",
    "webinar_presenter",
    "webinar_viewer",
    "livestream_host",
    "livestream_viewer",
)
#: Built-in presets are the same everywhere, so their ids and times are fixed.
_PRESET_NS = uuid.UUID("0b7c5a1e-3f52-4d8e-9a61-5c2f7d4e8b90")
_PRESET_TIME = "2025-01-01T00:00:00.000Z"

MEETING_FIELDS = (
    "title",
    "status",
    "record_on_start",
    "live_stream_on_start",
    "persist_chat",
    "summarize_on_end",
    "transcribe_on_end",
    "session_keep_alive_time_in_secs",
    "ai_config",
    "recording_config",
)
#: Fields a client may echo back from a GET in a PUT; they are not writable.
READ_ONLY_FIELDS = ("id", "created_at", "updated_at")
PARTICIPANT_FIELDS = ("name", "picture", "preset_name", "custom_participant_id")
PARTICIPANT_EDIT_FIELDS = ("name", "picture", "preset_name")


def default_ai_config() -> Dict[str, Any]:
    """The ``ai_config`` a meeting gets when none (or part of one) is given."""
    return {
        "summarization": {"summary_type": "general", "text_format": "markdown", "word_limit": 500},
        "transcription": {"keywords": [], "language": "en-US", "profanity_filter": False},
    }


def presets() -> List[Dict[str, Any]]:
    """The default presets, as ``GET /presets`` lists them."""
    return [
        {
            "id": str(uuid.uuid5(_PRESET_NS, name)),
            "name": name,
            "created_at": _PRESET_TIME,
            "updated_at": _PRESET_TIME,
        }
        for name in PRESET_NAMES
    ]


# -- input checks ----------------------------------------------------------------------------
def encodable(text: str) -> bool:
    """Whether ``text`` can be stored and sent: no lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def plausible_id(ident: str) -> bool:
    """Worth a lookup: ids are short; anything else is simply not found."""
    return 0 < len(ident) <= 128 and encodable(ident)


def type_name(value: Any) -> str:
    """How an error message names the JSON type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_keys(body: Mapping[str, Any], allowed: Tuple[str, ...], where: str) -> None:
    for key in body:
        if key not in allowed:
            raise bad(f'unknown field "{key}" in {where}; allowed: {", ".join(allowed)}')


def _opt_str(value: Any, name: str, max_len: int) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f'"{name}" must be a string or null, not {type_name(value)}')
    if len(value) > max_len:
        raise bad(f'"{name}" must be at most {max_len} characters')
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise bad(f'"{name}" must be a boolean, not {type_name(value)}')
    return value


def one_of(value: Any, name: str, allowed: Tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise bad(f'"{name}" must be one of {", ".join(allowed)}')
    return value


def _picture(value: Any) -> Optional[str]:
    url = _opt_str(value, "picture", MAX_URL)
    if url is not None and not re.match(r"(?i)^https?://[^\s/]+", url):
        raise bad('"picture" must be an http(s) URL')
    return url


def _preset(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise bad(f'"preset_name" is required and must be a string, not {type_name(value)}')
    if value not in PRESET_NAMES:
        raise bad(
            f'"preset_name" {value[:64]!r} names no preset; use one of: {", ".join(PRESET_NAMES)}'
        )
    return value


def _keywords(value: Any) -> List[str]:
    if not isinstance(value, list) or not all(
        isinstance(w, str) and len(w) <= MAX_NAME for w in value
    ):
        raise bad('"ai_config.transcription.keywords" must be an array of strings')
    if len(value) > 100:
        raise bad('"ai_config.transcription.keywords" takes at most 100 keywords')
    return list(value)


#: The check of each ``ai_config`` field, by field name (unique across sections).
_AI_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "summary_type": lambda v: one_of(v, "ai_config.summarization.summary_type", SUMMARY_TYPES),
    "text_format": lambda v: one_of(v, "ai_config.summarization.text_format", TEXT_FORMATS),
    "word_limit": lambda v: _whole(
        v,
        WORD_LIMIT_MIN,
        WORD_LIMIT_MAX,
        '"ai_config.summarization.word_limit" must be an integer',
    ),
    "keywords": _keywords,
    "language": lambda v: one_of(v, "ai_config.transcription.language", LANGUAGES),
    "profanity_filter": lambda v: _bool(v, "ai_config.transcription.profanity_filter"),
}


def _ai_config(value: Any) -> Dict[str, Any]:
    """The defaults overlaid with what ``value`` gives; sections and fields are checked in order."""
    config = default_ai_config()
    if value is None:
        return config
    if not isinstance(value, dict):
        raise bad(f'"ai_config" must be an object or null, not {type_name(value)}')
    _check_keys(value, tuple(config), '"ai_config"')
    for name, out in config.items():
        section = value.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise bad(f'"ai_config.{name}" must be an object')
        # A section's fields are those of its defaults.
        _check_keys(section, tuple(out), f'"ai_config.{name}"')
        for key in out:
            if key in section:
                out[key] = _AI_CHECKS[key](section[key])
    return config


def _whole(value: Any, lo: int, hi: int, what: str) -> int:
    """``value`` as an int if it is a whole JSON number in ``[lo, hi]``; else a 400 on ``what``."""
    # 1e999 parses to inf; int() of it would raise instead of answering 400.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()))
        or not lo <= value <= hi
    ):
        raise bad(f"{what} from {lo} to {hi}")
    return int(value)


def meeting_fields(body: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate the writable meeting fields present in ``body``.

    :param body: a create, update or replace request body.
    :returns: the validated fields (only those present).
    :raises RtkError: 400 with a message naming the bad field.
    """
    out: Dict[str, Any] = {}
    for key, value in body.items():
        if key in READ_ONLY_FIELDS:
            continue
        if key == "title":
            out[key] = _opt_str(value, key, MAX_TITLE)
        elif key == "status":
            out[key] = one_of(value, key, STATUSES)
        elif key in ("record_on_start", "live_stream_on_start"):
            # Optional booleans upstream: null means "off".
            out[key] = False if value is None else _bool(value, key)
        elif key in ("persist_chat", "summarize_on_end", "transcribe_on_end"):
            out[key] = _bool(value, key)
        elif key == "session_keep_alive_time_in_secs":
            out[key] = _whole(
                value,
                KEEP_ALIVE_MIN,
                KEEP_ALIVE_MAX,
                '"session_keep_alive_time_in_secs" must be a whole number of seconds',
            )
        elif key == "ai_config":
            out[key] = _ai_config(value)
        elif key == "recording_config":
            if value is not None and not isinstance(value, dict):
                raise bad(f'"recording_config" must be an object or null, not {type_name(value)}')
            out[key] = value
        else:
            raise bad(
                f'unknown field "{key[:64]}" for a meeting; allowed: {", ".join(MEETING_FIELDS)}'
            )
    return out


def new_meeting(meeting_id: str, fields: Mapping[str, Any], now: str) -> Dict[str, Any]:
    """A complete meeting object: defaults overlaid with ``fields``."""
    meeting: Dict[str, Any] = {
        "id": meeting_id,
        "title": None,
        "status": "ACTIVE",
        "record_on_start": False,
        "live_stream_on_start": False,
        "persist_chat": False,
        "summarize_on_end": False,
        "transcribe_on_end": False,
        "session_keep_alive_time_in_secs": KEEP_ALIVE_DEFAULT,
        "ai_config": default_ai_config(),
        "recording_config": None,
        "created_at": now,
        "updated_at": now,
    }
    meeting.update(fields)
    return meeting


def participant_fields(body: Mapping[str, Any], *, create: bool) -> Dict[str, Any]:
    """Validate a participant body (create needs ``preset_name``)."""
    allowed = PARTICIPANT_FIELDS if create else PARTICIPANT_EDIT_FIELDS
    _check_keys(body, allowed, "a participant" if create else "a participant update")
    out: Dict[str, Any] = {}
    if create or "preset_name" in body:
        out["preset_name"] = _preset(body.get("preset_name"))
    if "name" in body:
        out["name"] = _opt_str(body["name"], "name", MAX_NAME)
    if "picture" in body:
        out["picture"] = _picture(body["picture"])
    if "custom_participant_id" in body:
        cid = _opt_str(body["custom_participant_id"], "custom_participant_id", MAX_CUSTOM_ID)
        if cid == "":
            raise bad('"custom_participant_id" must not be empty')
        out["custom_participant_id"] = cid
    return out


def _int_query(request: web.Request, name: str, default: int, hi: Optional[int]) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\+?[0-9]{1,9}", raw.strip()):
        raise bad(f'"{name}" must be a positive integer')
    value = int(raw)
    if value < 1:
        raise bad(f'"{name}" must be at least 1')
    if hi is not None and value > hi:
        raise bad(f'"{name}" must be at most {hi}')
    return value


@attrs.frozen
class PageQuery:
    """``page_no``, ``per_page`` and ``search`` of a list request."""

    page_no: int = 1
    per_page: int = DEFAULT_PER_PAGE
    search: Optional[str] = None

    @classmethod
    def from_request(cls, request: web.Request) -> PageQuery:
        """Parse and check the paging parameters, or raise a 400."""
        search = request.query.get("search")
        if search is not None and (len(search) > MAX_SEARCH or not encodable(search)):
            raise bad(f'"search" must be valid text of at most {MAX_SEARCH} characters')
        return cls(
            page_no=_int_query(request, "page_no", 1, None),
            per_page=_int_query(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
            search=search or None,
        )

    @property
    def offset(self) -> int:
        """Rows before this page."""
        return (self.page_no - 1) * self.per_page

    def paging(self, total: int, count: int) -> Dict[str, int]:
        """The ``paging`` object: 1-based inclusive offsets, zeros for an empty page."""
        if count == 0:
            return {"total_count": total, "start_offset": 0, "end_offset": 0}
        return {
            "total_count": total,
            "start_offset": self.offset + 1,
            "end_offset": self.offset + count,
        }
