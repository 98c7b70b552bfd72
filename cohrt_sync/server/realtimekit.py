"""RealtimeKit REST emulation under ``/edge/realtimekit/``.

The hosted API proxies ``/edge/realtimekit/*`` to Cloudflare RealtimeKit's REST
API (``/accounts/{account}/realtime/kit/{app_id}/*``) for the tenant. Media
cannot run here, but the REST surface can: meetings, participants with real
signed tokens, presets, paging, and the eventual consistency the spec warns
about (a new meeting answers ``ResourceNotFound`` for ``rtk_delay_ms``).

Two error envelopes, as on the hosted API:

* proxy-level failures (credentials, provisioning, rate limits, a paused
  tenant) raise :class:`~cohrt_sync.server.errors.ApiError` and are rendered
  by the app's middleware as the Google envelope, like every edge endpoint;
* RealtimeKit's own answers (unknown ids, bad input) use Cloudflare's
  envelope ``{"success": false, "errors": [{"code", "message"}],
  "messages": [], "data": null}``.

Meetings and participants live in ``<data_dir>/realtimekit/realtimekit.sqlite3``,
outside every tenant database (direct SQL cannot see them), driven from one
named worker thread so the event loop never blocks on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import sqlite3
import uuid
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
)

import attrs
from aiohttp import web

from . import tokens
from ._json import dumps, parse_json
from ._sqlite import SqliteWorker
from ._time import iso_utc
from .connguard import read_body
from .limits import RTK_PARTICIPANT
from .state import Tenant

if TYPE_CHECKING:
    from .app import Core

log = logging.getLogger("cohrt_sync.server.realtimekit")
T = TypeVar("T")

PREFIX = "/edge/realtimekit"
#: Where the tenant's lazily created app lives in ``Tenant.extra``.
EXTRA_KEY = "realtimekit_app"
#: Participant tokens are for joining a meeting later, so they outlive edge tokens.
TOKEN_TTL_S = 24 * 3600
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
#: Cloudflare's error code for a path no route serves.
CODE_NO_ROUTE = 7000
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


# -- Cloudflare's envelope --------------------------------------------------------------
class RtkError(Exception):
    """An answer of RealtimeKit itself, rendered in Cloudflare's error envelope.

    :param status: HTTP status.
    :param message: what went wrong, for people.
    :param code: the envelope's numeric ``code`` (the HTTP status unless given).
    """

    def __init__(self, status: int, message: str, *, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = status if code is None else code

    def response(self, headers: Optional[Mapping[str, str]] = None) -> web.Response:
        """Render as ``{"success": false, "errors": [...], "messages": [], "data": null}``."""
        body = {
            "success": False,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "data": None,
        }
        return web.Response(
            status=self.status,
            text=dumps(body),
            content_type="application/json",
            headers=headers,
        )


def not_found(kind: str, ident: str) -> RtkError:
    """The ``ResourceNotFound`` answer for an unknown (or not yet visible) id."""
    shown = ident if len(ident) <= 64 else ident[:61] + "..."
    return RtkError(404, f"ResourceNotFound: no {kind} with id {shown!r}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plausible_id(ident: str) -> bool:
    """Worth a lookup: ids are short; anything else is simply not found."""
    return 0 < len(ident) <= 128 and _encodable(ident)


def bad(message: str) -> RtkError:
    """A 400 for invalid input."""
    return RtkError(400, message)


def ok(data: Any, *, status: int = 200, paging: Optional[Dict[str, int]] = None) -> web.Response:
    """``{"success": true, "data": ...}`` (with ``paging`` for lists)."""
    body: Dict[str, Any] = {"success": True, "data": data}
    if paging is not None:
        body["paging"] = paging
    return web.Response(status=status, text=dumps(body), content_type="application/json")


# -- input checks ----------------------------------------------------------------------------
def _type_name(value: Any) -> str:
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
        raise bad(f'"{name}" must be a string or null, not {_type_name(value)}')
    if len(value) > max_len:
        raise bad(f'"{name}" must be at most {max_len} characters')
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise bad(f'"{name}" must be a boolean, not {_type_name(value)}')
    return value


def _enum(value: Any, name: str, allowed: Tuple[str, ...]) -> str:
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
        raise bad(f'"preset_name" is required and must be a string, not {_type_name(value)}')
    if value not in PRESET_NAMES:
        raise bad(
            f'"preset_name" {value[:64]!r} names no preset; use one of: {", ".join(PRESET_NAMES)}'
        )
    return value


def _ai_config(value: Any) -> Dict[str, Any]:
    config = default_ai_config()
    if value is None:
        return config
    if not isinstance(value, dict):
        raise bad(f'"ai_config" must be an object or null, not {_type_name(value)}')
    _check_keys(value, ("summarization", "transcription"), '"ai_config"')
    summ = value.get("summarization")
    if summ is not None:
        if not isinstance(summ, dict):
            raise bad('"ai_config.summarization" must be an object')
        _check_keys(
            summ, ("summary_type", "text_format", "word_limit"), '"ai_config.summarization"'
        )
        out = config["summarization"]
        if "summary_type" in summ:
            out["summary_type"] = _enum(
                summ["summary_type"], "ai_config.summarization.summary_type", SUMMARY_TYPES
            )
        if "text_format" in summ:
            out["text_format"] = _enum(
                summ["text_format"], "ai_config.summarization.text_format", TEXT_FORMATS
            )
        if "word_limit" in summ:
            limit = _whole(summ["word_limit"], WORD_LIMIT_MIN, WORD_LIMIT_MAX)
            if limit is None:
                raise bad(
                    '"ai_config.summarization.word_limit" must be an integer from '
                    f"{WORD_LIMIT_MIN} to {WORD_LIMIT_MAX}"
                )
            out["word_limit"] = limit
    trans = value.get("transcription")
    if trans is not None:
        if not isinstance(trans, dict):
            raise bad('"ai_config.transcription" must be an object')
        _check_keys(
            trans, ("keywords", "language", "profanity_filter"), '"ai_config.transcription"'
        )
        out = config["transcription"]
        if "keywords" in trans:
            words = trans["keywords"]
            if not isinstance(words, list) or not all(
                isinstance(w, str) and len(w) <= MAX_NAME for w in words
            ):
                raise bad('"ai_config.transcription.keywords" must be an array of strings')
            if len(words) > 100:
                raise bad('"ai_config.transcription.keywords" takes at most 100 keywords')
            out["keywords"] = list(words)
        if "language" in trans:
            out["language"] = _enum(
                trans["language"], "ai_config.transcription.language", LANGUAGES
            )
        if "profanity_filter" in trans:
            out["profanity_filter"] = _bool(
                trans["profanity_filter"], "ai_config.transcription.profanity_filter"
            )
    return config


def _whole(value: Any, lo: int, hi: int) -> Optional[int]:
    """``value`` as an int if it is a whole JSON number in ``[lo, hi]``, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # 1e999 parses to inf; int() of it would raise instead of answering 400.
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    return int(value) if lo <= value <= hi else None


def _keep_alive(value: Any) -> int:
    seconds = _whole(value, KEEP_ALIVE_MIN, KEEP_ALIVE_MAX)
    if seconds is None:
        raise bad(
            '"session_keep_alive_time_in_secs" must be a whole number of seconds from '
            f"{KEEP_ALIVE_MIN} to {KEEP_ALIVE_MAX}"
        )
    return seconds


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
            out[key] = _enum(value, key, STATUSES)
        elif key in ("record_on_start", "live_stream_on_start"):
            # Optional booleans upstream: null means "off".
            out[key] = False if value is None else _bool(value, key)
        elif key in ("persist_chat", "summarize_on_end", "transcribe_on_end"):
            out[key] = _bool(value, key)
        elif key == "session_keep_alive_time_in_secs":
            out[key] = _keep_alive(value)
        elif key == "ai_config":
            out[key] = _ai_config(value)
        elif key == "recording_config":
            if value is not None and not isinstance(value, dict):
                raise bad(f'"recording_config" must be an object or null, not {_type_name(value)}')
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
        if search is not None and (len(search) > MAX_SEARCH or not _encodable(search)):
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


# -- storage ------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meetings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL,
    title TEXT,
    status TEXT NOT NULL,
    ready_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meetings_app_seq ON meetings (app_id, seq);
CREATE TABLE IF NOT EXISTS participants (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    meeting_id TEXT NOT NULL,
    name TEXT,
    custom_participant_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS participants_meeting_seq ON participants (meeting_id, seq);
"""


@attrs.frozen
class StoredMeeting:
    """A meeting row: its JSON object and when it becomes visible."""

    doc: Dict[str, Any]
    ready_at: float


class RtkStore(SqliteWorker):
    """The RealtimeKit SQLite file, driven from one named worker thread.

    :param path: the database file (created on first use).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "cohrt-sync-rtk", synchronous="NORMAL")

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)

    # -- meetings (all run on the store's thread) -----------------------------------------
    def insert_meeting(self, app_id: str, doc: Dict[str, Any], ready_at: float) -> None:
        """Store a new meeting."""
        self._db().execute(
            "INSERT INTO meetings (id, app_id, title, status, ready_at, doc)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (doc["id"], app_id, doc["title"], doc["status"], ready_at, dumps(doc)),
        )

    def get_meeting(self, app_id: str, meeting_id: str) -> Optional[StoredMeeting]:
        """The meeting of ``app_id`` with that id, or None."""
        row = (
            self._db()
            .execute(
                "SELECT doc, ready_at FROM meetings WHERE app_id = ? AND id = ?",
                (app_id, meeting_id),
            )
            .fetchone()
        )
        return None if row is None else StoredMeeting(json.loads(row[0]), float(row[1]))

    def update_meeting(
        self, app_id: str, meeting_id: str, fields: Dict[str, Any], replace: bool, now: str
    ) -> Optional[Dict[str, Any]]:
        """Merge (PATCH) or replace (PUT) a meeting's fields; the result, or None if none.

        Read and write happen in one call on the store's only thread, so two
        concurrent updates cannot lose each other's fields.
        """
        stored = self.get_meeting(app_id, meeting_id)
        if stored is None:
            return None
        old = stored.doc
        if replace:
            doc = new_meeting(meeting_id, fields, old["created_at"])
            doc["updated_at"] = now
        else:
            doc = {**old, **fields}
            if fields:
                doc["updated_at"] = now
        self._db().execute(
            "UPDATE meetings SET title = ?, status = ?, doc = ? WHERE app_id = ? AND id = ?",
            (doc["title"], doc["status"], dumps(doc), app_id, meeting_id),
        )
        return doc

    def list_meetings(
        self, app_id: str, q: PageQuery, status: Optional[str]
    ) -> Tuple[int, List[Dict[str, Any]]]:
        """(total matching, this page's meetings), oldest first."""
        where = "app_id = ?"
        args: List[Any] = [app_id]
        if q.search:
            # instr() rather than LIKE: no wildcard escaping to get wrong.
            where += " AND (id = ? OR instr(lower(coalesce(title, '')), lower(?)) > 0)"
            args += [q.search, q.search]
        if status:
            where += " AND status = ?"
            args.append(status)
        db = self._db()
        total = int(db.execute(f"SELECT count(*) FROM meetings WHERE {where}", args).fetchone()[0])
        rows = db.execute(
            f"SELECT doc FROM meetings WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*args, q.per_page, q.offset],
        ).fetchall()
        return total, [json.loads(r[0]) for r in rows]

    def delete_app(self, app_id: str) -> int:
        """Remove every meeting and participant of an app; how many meetings went."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "DELETE FROM participants WHERE meeting_id IN"
                " (SELECT id FROM meetings WHERE app_id = ?)",
                (app_id,),
            )
            cur = db.execute("DELETE FROM meetings WHERE app_id = ?", (app_id,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return cur.rowcount

    # -- participants ------------------------------------------------------------------------
    def insert_participant(self, meeting_id: str, doc: Dict[str, Any]) -> None:
        """Store a new participant."""
        self._db().execute(
            "INSERT INTO participants (id, meeting_id, name, custom_participant_id, doc)"
            " VALUES (?, ?, ?, ?, ?)",
            (doc["id"], meeting_id, doc["name"], doc["custom_participant_id"], dumps(doc)),
        )

    def get_participant(self, meeting_id: str, participant_id: str) -> Optional[Dict[str, Any]]:
        """The participant of that meeting, or None."""
        row = (
            self._db()
            .execute(
                "SELECT doc FROM participants WHERE meeting_id = ? AND id = ?",
                (meeting_id, participant_id),
            )
            .fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    def update_participant(
        self, meeting_id: str, participant_id: str, fields: Dict[str, Any], now: str
    ) -> Optional[Dict[str, Any]]:
        """Merge ``fields`` into a participant in one step; the result, or None if none."""
        old = self.get_participant(meeting_id, participant_id)
        if old is None:
            return None
        doc = {**old, **fields}
        if fields:
            doc["updated_at"] = now
        self._db().execute(
            "UPDATE participants SET name = ?, doc = ? WHERE meeting_id = ? AND id = ?",
            (doc["name"], dumps(doc), meeting_id, participant_id),
        )
        return doc

    def delete_participant(self, meeting_id: str, participant_id: str) -> bool:
        """Remove a participant; False if there was none."""
        cur = self._db().execute(
            "DELETE FROM participants WHERE meeting_id = ? AND id = ?",
            (meeting_id, participant_id),
        )
        return cur.rowcount > 0

    def list_participants(self, meeting_id: str, q: PageQuery) -> Tuple[int, List[Dict[str, Any]]]:
        """(total matching, this page's participants), oldest first."""
        where = "meeting_id = ?"
        args: List[Any] = [meeting_id]
        if q.search:
            where += (
                " AND (id = ? OR custom_participant_id = ?"
                " OR instr(lower(coalesce(name, '')), lower(?)) > 0)"
            )
            args += [q.search, q.search, q.search]
        db = self._db()
        total = int(
            db.execute(f"SELECT count(*) FROM participants WHERE {where}", args).fetchone()[0]
        )
        rows = db.execute(
            f"SELECT doc FROM participants WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*args, q.per_page, q.offset],
        ).fetchall()
        return total, [json.loads(r[0]) for r in rows]

    def counts(self) -> Tuple[int, int]:
        """(meetings, participants) stored, over all tenants (for tests and diagnostics)."""
        db = self._db()
        meetings = int(db.execute("SELECT count(*) FROM meetings").fetchone()[0])
        parts = int(db.execute("SELECT count(*) FROM participants").fetchone()[0])
        return meetings, parts


# -- the service ------------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class Located:
    """A participant found from a request path, with what it belongs to."""

    tenant: Tenant
    app_id: str
    meeting: Dict[str, Any]
    participant: Dict[str, Any]


class RealtimeKitService:
    """The handlers of ``/edge/realtimekit/*`` for one server.

    :param core: the server's shared state.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = RtkStore(core.data_dir / "realtimekit" / "realtimekit.sqlite3")

    # -- plumbing ------------------------------------------------------------------------------
    def tenant(self, request: web.Request) -> Tenant:
        """Authenticate as the other edge endpoints do, and require realtime."""
        tenant = self.core.edge_tenant(request)
        self.core.require_realtime(tenant)
        return tenant

    @staticmethod
    def app_id(tenant: Tenant) -> Optional[str]:
        """The tenant's RealtimeKit app id, or None before its first meeting."""
        app = tenant.extra.get(EXTRA_KEY)
        if isinstance(app, dict) and isinstance(app.get("id"), str):
            return str(app["id"])
        return None

    async def ensure_app(self, tenant: Tenant) -> str:
        """The tenant's app id, creating the app on first use."""
        existing = self.app_id(tenant)
        if existing is not None:
            return existing
        app_id = str(uuid.uuid4())
        # Set before awaiting so a concurrent first meeting sees the same app.
        tenant.extra[EXTRA_KEY] = {"id": app_id, "created_at": iso_utc(self.core.now())}
        await self.core.state.save(tenant)
        log.info("created RealtimeKit app %s for tenant %s", app_id, tenant.id)
        return app_id

    async def body(self, request: web.Request) -> Dict[str, Any]:
        """The JSON object body; RealtimeKit's 400 when it is anything else."""
        raw = await read_body(request, self.core.config.body_timeout)
        if not raw.strip():
            return {}
        try:
            value = parse_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise bad("request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise bad(f"request body must be a JSON object, not {_type_name(value)}")
        try:
            dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (\\ud800) parse as JSON but can be neither stored nor sent back.
            raise bad("request body contains invalid Unicode (a lone surrogate)") from None
        except ValueError:
            # 1e999 parses as infinity, which no JSON answer can carry.
            raise bad("request body contains a number out of range") from None
        return value

    async def visible_meeting(self, tenant: Tenant, meeting_id: str) -> Tuple[str, Dict[str, Any]]:
        """(app id, meeting) once it is consistent; ``ResourceNotFound`` before."""
        app_id, stored = await self.stored_meeting(tenant, meeting_id)
        if stored.ready_at > self.core.now():
            raise not_found("meeting", meeting_id)
        return app_id, stored.doc

    async def stored_meeting(self, tenant: Tenant, meeting_id: str) -> Tuple[str, StoredMeeting]:
        """(app id, stored meeting) whether or not reads see it yet; 404 if none."""
        app_id = self.app_id(tenant)
        stored = None
        if app_id is not None and _plausible_id(meeting_id):
            stored = await self.store.call(self.store.get_meeting, app_id, meeting_id)
        if app_id is None or stored is None:
            raise not_found("meeting", meeting_id)
        return app_id, stored

    def mint(self, tenant: Tenant, app_id: str, meeting_id: str, part: Mapping[str, Any]) -> str:
        """A signed participant token, counted against the tier's cap."""
        self.core.limiter.take(tenant, RTK_PARTICIPANT)
        return self.sign(tenant, app_id, meeting_id, part)

    def sign(self, tenant: Tenant, app_id: str, meeting_id: str, part: Mapping[str, Any]) -> str:
        """A signed participant token (already counted by the caller)."""
        return tokens.mint(
            tenant.secret,
            tenant=tenant.id,
            typ=tokens.RTK,
            now=self.core.now(),
            ttl=TOKEN_TTL_S,
            sub=str(part["id"]),
            name=part.get("name"),
            extra={"app_id": app_id, "meeting_id": meeting_id, "preset_name": part["preset_name"]},
        )

    async def verify_token(self, tenant: Tenant, token: str) -> Dict[str, Any]:
        """What a participant token says, if it is valid for ``tenant`` right now.

        :raises tokens.TokenError: forged, expired, another tenant's, or its
            participant or meeting no longer exists.
        """
        if tokens.unverified_tenant(token) != tenant.id:
            raise tokens.TokenError("token belongs to another tenant")
        claims = tokens.verify(token, tenant.secret, typ=tokens.RTK, now=self.core.now())
        meeting_id = str(claims.extra.get("meeting_id", ""))
        app_id = self.app_id(tenant)
        if app_id is None or claims.extra.get("app_id") != app_id:
            raise tokens.TokenError("the token's RealtimeKit app no longer exists")
        part = await self.store.call(self.store.get_participant, meeting_id, str(claims.sub))
        if part is None:
            raise tokens.TokenError("the token's participant no longer exists")
        return {
            "valid": True,
            "participant_id": claims.sub,
            "meeting_id": meeting_id,
            "preset_name": claims.extra.get("preset_name"),
            "name": claims.name,
            "expires_at": iso_utc(claims.exp),
        }

    # -- meetings --------------------------------------------------------------------------------
    async def list_meetings(self, request: web.Request) -> web.Response:
        """``GET /meetings``: paged, searchable by id or title, filterable by status."""
        tenant = self.tenant(request)
        q = PageQuery.from_request(request)
        status = request.query.get("status") or None
        if status is not None:
            _enum(status, "status", STATUSES)
        app_id = self.app_id(tenant)
        total, items = (
            await self.store.call(self.store.list_meetings, app_id, q, status)
            if app_id
            else (0, [])
        )
        return ok(items, paging=q.paging(total, len(items)))

    async def create_meeting(self, request: web.Request) -> web.Response:
        """``POST /meetings``: a new meeting, visible to reads after the delay."""
        tenant = self.tenant(request)
        fields = meeting_fields(await self.body(request))
        app_id = await self.ensure_app(tenant)
        now = self.core.now()
        meeting = new_meeting(str(uuid.uuid4()), fields, iso_utc(now))
        ready_at = now + self.core.config.rtk_delay_ms / 1000.0
        await self.store.call(self.store.insert_meeting, app_id, meeting, ready_at)
        return ok(meeting, status=201)

    async def get_meeting(self, request: web.Request) -> web.Response:
        """``GET /meetings/{id}``."""
        tenant = self.tenant(request)
        _, meeting = await self.visible_meeting(tenant, request.match_info["meeting_id"])
        return ok(meeting)

    async def update_meeting(self, request: web.Request) -> web.Response:
        """``PATCH /meetings/{id}`` updates the fields given; ``PUT`` replaces them all."""
        tenant = self.tenant(request)
        meeting_id = request.match_info["meeting_id"]
        body = await self.body(request)
        if "id" in body and body["id"] != meeting_id:
            raise bad('"id" in the body does not match the meeting id of the path')
        fields = meeting_fields(body)
        app_id = self.app_id(tenant)
        meeting = None
        # Writes go to the primary, so they see a meeting before reads do: no delay here.
        if app_id is not None and _plausible_id(meeting_id):
            meeting = await self.store.call(
                self.store.update_meeting,
                app_id,
                meeting_id,
                fields,
                request.method == "PUT",
                iso_utc(self.core.now()),
            )
        if meeting is None:
            raise not_found("meeting", meeting_id)
        return ok(meeting)

    # -- participants ------------------------------------------------------------------------------
    async def list_participants(self, request: web.Request) -> web.Response:
        """``GET /meetings/{id}/participants``: paged, searchable by name or ids."""
        tenant = self.tenant(request)
        q = PageQuery.from_request(request)
        _, meeting = await self.visible_meeting(tenant, request.match_info["meeting_id"])
        total, items = await self.store.call(self.store.list_participants, meeting["id"], q)
        return ok(items, paging=q.paging(total, len(items)))

    async def add_participant(self, request: web.Request) -> web.Response:
        """``POST /meetings/{id}/participants``: a participant and its token."""
        tenant = self.tenant(request)
        body = await self.body(request)
        app_id, meeting = await self.visible_meeting(tenant, request.match_info["meeting_id"])
        fields = participant_fields(body, create=True)
        if meeting["status"] != "ACTIVE":
            raise bad(
                f"meeting {meeting['id']} is INACTIVE and accepts no participants; "
                "PATCH its status to ACTIVE first"
            )
        now = iso_utc(self.core.now())
        part_id = str(uuid.uuid4())
        part = {
            "id": part_id,
            "name": fields.get("name"),
            "picture": fields.get("picture"),
            "preset_name": fields["preset_name"],
            # Upstream requires it; here it defaults to the participant's own id.
            "custom_participant_id": fields.get("custom_participant_id") or part_id,
            "created_at": now,
            "updated_at": now,
        }
        token = self.mint(tenant, app_id, meeting["id"], part)
        await self.store.call(self.store.insert_participant, meeting["id"], part)
        return ok({**part, "token": token}, status=201)

    async def participant(self, request: web.Request) -> Located:
        """The participant named by the path (and its meeting), or a 404."""
        tenant = self.tenant(request)
        app_id, meeting = await self.visible_meeting(tenant, request.match_info["meeting_id"])
        pid = request.match_info["participant_id"]
        part = None
        if _plausible_id(pid):
            part = await self.store.call(self.store.get_participant, meeting["id"], pid)
        if part is None:
            raise not_found("participant", pid)
        return Located(tenant, app_id, meeting, part)

    async def get_participant(self, request: web.Request) -> web.Response:
        """``GET /meetings/{id}/participants/{pid}`` (no token: tokens are shown once)."""
        return ok((await self.participant(request)).participant)

    async def edit_participant(self, request: web.Request) -> web.Response:
        """``PATCH /meetings/{id}/participants/{pid}``: name, picture, preset; a fresh token."""
        at = await self.participant(request)
        fields = participant_fields(await self.body(request), create=False)
        meeting_id = at.meeting["id"]
        # Count the token before changing anything, so a refusal leaves no trace.
        self.core.limiter.take(at.tenant, RTK_PARTICIPANT)
        updated = await self.store.call(
            self.store.update_participant,
            meeting_id,
            at.participant["id"],
            fields,
            iso_utc(self.core.now()),
        )
        if updated is None:
            raise not_found("participant", at.participant["id"])
        token = self.sign(at.tenant, at.app_id, meeting_id, updated)
        return ok({**updated, "token": token})

    async def delete_participant(self, request: web.Request) -> web.Response:
        """``DELETE /meetings/{id}/participants/{pid}``: its tokens stop verifying."""
        at = await self.participant(request)
        part = at.participant
        if not await self.store.call(self.store.delete_participant, at.meeting["id"], part["id"]):
            raise not_found("participant", part["id"])
        return ok(part)

    async def refresh_token(self, request: web.Request) -> web.Response:
        """``POST /meetings/{id}/participants/{pid}/token``: a fresh token."""
        at = await self.participant(request)
        meeting_id = at.meeting["id"]
        if at.meeting["status"] != "ACTIVE":
            raise bad(f"meeting {meeting_id} is INACTIVE; no tokens are issued for it")
        return ok({"token": self.mint(at.tenant, at.app_id, meeting_id, at.participant)})

    # -- presets and local extensions -------------------------------------------------------------
    async def list_presets(self, request: web.Request) -> web.Response:
        """``GET /presets``: the default presets, paged."""
        self.tenant(request)
        q = PageQuery.from_request(request)
        items = presets()
        if q.search:
            items = [p for p in items if q.search.lower() in p["name"].lower()]
        page = items[q.offset : q.offset + q.per_page]
        return ok(page, paging=q.paging(len(items), len(page)))

    async def verify(self, request: web.Request) -> web.Response:
        """``POST /_local/verify-token`` (a local extension): introspect a participant token.

        Answers 200 with ``{"valid": false, "reason": ...}`` for a bad token,
        as OAuth token introspection does.
        """
        tenant = self.tenant(request)
        body = await self.body(request)
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise bad('"token" is required and must be a string')
        try:
            data = await self.verify_token(tenant, token)
        except tokens.TokenError as e:
            data = {"valid": False, "reason": str(e)}
        return ok(data)

    async def no_route(self, request: web.Request) -> web.Response:
        """Everything else under the prefix: Cloudflare's 405 or "no route" 404."""
        self.tenant(request)
        tail = request.path[len(PREFIX) :]
        for pattern, methods in _KNOWN:
            if pattern.fullmatch(tail) and request.method not in methods:
                raise _MethodNotAllowed(request.method, methods)
        raise RtkError(
            404, f"No route for that URI: {request.method} {request.path}", code=CODE_NO_ROUTE
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def on_realtime_deleted(self, tenant: Tenant) -> None:
        """Remove the tenant's app with all its meetings and participants."""
        app_id = self.app_id(tenant)
        tenant.extra.pop(EXTRA_KEY, None)
        if app_id is not None:
            removed = await self.store.call(self.store.delete_app, app_id)
            log.info("deleted RealtimeKit app %s (%d meetings)", app_id, removed)
        await self.core.state.save(tenant)

    async def close(self) -> None:
        """Close the store without blocking the loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)


class _MethodNotAllowed(RtkError):
    def __init__(self, method: str, allowed: Tuple[str, ...]) -> None:
        super().__init__(405, f"method {method} is not allowed here; use {', '.join(allowed)}")
        self.allowed = allowed


_ID = r"/[^/]+"
_KNOWN: Tuple[Tuple[re.Pattern[str], Tuple[str, ...]], ...] = (
    (re.compile(r"/meetings"), ("GET", "POST")),
    (re.compile(r"/meetings" + _ID), ("GET", "PATCH", "PUT")),
    (re.compile(r"/meetings" + _ID + "/participants/?"), ("GET", "POST")),
    (re.compile(r"/meetings" + _ID + "/participants" + _ID), ("GET", "PATCH", "DELETE")),
    (re.compile(r"/meetings" + _ID + "/participants" + _ID + "/token/?"), ("POST",)),
    (re.compile(r"/presets"), ("GET",)),
    (re.compile(r"/_local/verify-token"), ("POST",)),
)


def _cloudflare_errors(handler: Handler) -> Handler:
    """Render :class:`RtkError` (and storage failures) in Cloudflare's envelope.

    :class:`~cohrt_sync.server.errors.ApiError` passes through to the app's
    middleware: auth, provisioning and rate refusals are the proxy's, not
    RealtimeKit's, and keep the Google envelope of every edge endpoint.
    """

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _MethodNotAllowed as e:
            return e.response({"Allow": ", ".join(e.allowed)})
        except RtkError as e:
            return e.response()
        except UnicodeError:
            # Text that is not valid UTF-8 in a path or query is bad input, not a crash.
            return bad("request contains invalid Unicode").response()
        except sqlite3.Error:
            log.exception("RealtimeKit storage failed on %s %s", request.method, request.path)
            return RtkError(500, "RealtimeKit storage failed; try again").response()

    return wrapped


SERVICE: web.AppKey[RealtimeKitService] = web.AppKey("realtimekit", RealtimeKitService)


def install(app: web.Application, core: Core) -> None:
    """Add the RealtimeKit routes to ``app`` and hook its lifecycle.

    :param app: the server's application (routes are added after the core ones).
    :param core: the server's shared state.
    """
    svc = RealtimeKitService(core)
    app[SERVICE] = svc
    m = "/meetings/{meeting_id}"
    p = m + "/participants/{participant_id}"
    routes: List[Tuple[str, str, Handler]] = [
        ("GET", "/meetings", svc.list_meetings),
        ("POST", "/meetings", svc.create_meeting),
        ("GET", m, svc.get_meeting),
        ("PATCH", m, svc.update_meeting),
        ("PUT", m, svc.update_meeting),
        ("GET", m + "/participants", svc.list_participants),
        ("POST", m + "/participants", svc.add_participant),
        ("GET", p, svc.get_participant),
        ("PATCH", p, svc.edit_participant),
        ("DELETE", p, svc.delete_participant),
        ("POST", p + "/token", svc.refresh_token),
        ("GET", "/presets", svc.list_presets),
        ("POST", "/_local/verify-token", svc.verify),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, _cloudflare_errors(handler))
    # Last, so that it only sees what no route above serves (wrong method included);
    # [\s\S], not ".", so that a path with a newline in it is caught too.
    app.router.add_route("*", PREFIX + "{tail:(/[\\s\\S]*)?}", _cloudflare_errors(svc.no_route))
    core.on_realtime_deleted.append(svc.on_realtime_deleted)

    async def on_cleanup(app: web.Application) -> None:
        await svc.close()

    app.on_cleanup.append(on_cleanup)


__all__ = [
    "PRESET_NAMES",
    "SERVICE",
    "RealtimeKitService",
    "RtkError",
    "RtkStore",
    "install",
    "presets",
]
