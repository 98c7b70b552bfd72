"""The handlers of ``/edge/realtimekit/*``: authenticate, validate, store, answer.

Meetings become visible to reads only ``rtk_delay_ms`` after they are created
(the eventual consistency the spec warns about); writes see them at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

import attrs
from aiohttp import web

from .. import tokens
from .._json import dumps, parse_json
from .._time import iso_utc
from ..connguard import read_body
from ..limits import RTK_PARTICIPANT
from ..state import Tenant
from .envelope import CODE_NO_ROUTE, MethodNotAllowed, RtkError, bad, not_found, ok
from .storage import RtkStore, StoredMeeting
from .validation import (
    STATUSES,
    PageQuery,
    meeting_fields,
    new_meeting,
    one_of,
    participant_fields,
    plausible_id,
    presets,
    type_name,
)

if TYPE_CHECKING:
    from ..core import Core

log = logging.getLogger("cohrt_sync.server.realtimekit")

PREFIX = "/edge/realtimekit"
#: Where the tenant's lazily created app lives in ``Tenant.extra``.
EXTRA_KEY = "realtimekit_app"
#: Participant tokens are for joining a meeting later, so they outlive edge tokens.
TOKEN_TTL_S = 24 * 3600


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
            raise bad(f"request body must be a JSON object, not {type_name(value)}")
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
        if app_id is not None and plausible_id(meeting_id):
            stored = await self.store.call(self.store.get_meeting, app_id, meeting_id)
        if app_id is None or stored is None:
            raise not_found("meeting", meeting_id)
        return app_id, stored

    async def mint(
        self, tenant: Tenant, app_id: str, meeting_id: str, part: Mapping[str, Any]
    ) -> str:
        """A signed participant token, counted against the tier's cap."""
        await self.core.usage.charge(tenant, RTK_PARTICIPANT)
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
            one_of(status, "status", STATUSES)
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
        if app_id is not None and plausible_id(meeting_id):
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
        token = await self.mint(tenant, app_id, meeting["id"], part)
        await self.store.call(self.store.insert_participant, meeting["id"], part)
        return ok({**part, "token": token}, status=201)

    async def participant(self, request: web.Request) -> Located:
        """The participant named by the path (and its meeting), or a 404."""
        tenant = self.tenant(request)
        app_id, meeting = await self.visible_meeting(tenant, request.match_info["meeting_id"])
        pid = request.match_info["participant_id"]
        part = None
        if plausible_id(pid):
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
        await self.core.usage.charge(at.tenant, RTK_PARTICIPANT)
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
        token = await self.mint(at.tenant, at.app_id, meeting_id, at.participant)
        return ok({"token": token})

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
                raise MethodNotAllowed(request.method, methods)
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
