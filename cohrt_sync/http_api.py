"""The client's HTTP calls: one method per REST endpoint of the edge API.

:class:`HttpApi` is the request half of :class:`~cohrt_sync.Client` (mixed
into it): argument checks, the request over the client's
:class:`~cohrt_sync._http.HttpTransport` with the retry mode the endpoint
allows, and the reply turned into model objects. Channels, plugins and the
client's lifecycle live in :mod:`cohrt_sync.client`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

from ._answers import history_page, json_object, sql_rows, token_answer
from ._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport, encode_json
from .dm import send_dm_request as _send_dm_request
from .errors import BadRequestError, InvalidArgumentTypeError
from .models import (
    Message,
    PublishAck,
    Token,
    check_after,
    check_channel,
    check_data,
    check_event,
    check_idempotency_key,
    check_limit,
    check_name,
    check_text,
    check_ttl,
    check_user_id,
    publish_frame,
)
from .plugins import call_hook

if TYPE_CHECKING:
    import pluggy

__all__ = ["HttpApi"]

log = logging.getLogger("cohrt_sync.client")


def _log_hook_failure(where: str, error: BaseException) -> None:
    log.error("hook %s raised after an HTTP publish", where, exc_info=error)


class HttpApi:
    """The HTTP endpoints of :class:`~cohrt_sync.Client` (mixed into it)."""

    __slots__ = ()

    # The field of Client (an attrs class with slots) that the calls use.
    _http: HttpTransport
    base_url: str

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The plugin manager whose plugins hear of each HTTP publish (Client's)."""
        raise NotImplementedError

    def mint_token(
        self, user_id: Union[str, int], name: Optional[str] = None, ttl: int = 300
    ) -> Token:
        """Mint a WebSocket connection token (``POST /edge/realtime/token``).

        :param user_id: the user's id; an ``int`` is sent as a string.
        :param name: display name shown in presence.
        :param ttl: token lifetime in seconds, 60 to 3600.
        :raises BadRequestError: for invalid arguments (before any request).
        """
        uid = check_user_id(user_id)
        check_ttl(ttl)
        check_name(name)
        body: Dict[str, Any] = {"user_id": uid, "ttl": ttl}
        if name is not None:
            body["name"] = name
        raw = self._http.request(
            "POST",
            "/edge/realtime/token",
            body=encode_json(body),
            retry_mode=RETRY_ALWAYS,
            context="mint token",
        )
        token, expires_in = token_answer(raw, "mint token (POST /edge/realtime/token)", ttl)
        return Token(
            token=token, expires_in=expires_in, user_id=uid, name=name, base_url=self.base_url
        )

    def publish(
        self,
        channel: str,
        data: Any,
        event: str = "message",
        persist: bool = True,
        *,
        idempotency_key: Optional[str] = None,
    ) -> PublishAck:
        """Publish over HTTP (``POST /edge/realtime``) without a socket.

        Retries: without ``idempotency_key`` only failures that provably
        were not applied are retried (connection refused, connect timeout,
        429), so a publish is never sent twice. With one, it is sent as the
        ``Idempotency-Key`` header and every retryable failure (timeouts,
        dropped connections, 502/503/504) is retried too, because a server
        that dedupes the key (the local server does) applies it once.

        :param channel: the channel name.
        :param data: the JSON payload.
        :param event: the event type.
        :param persist: store in history.
        :param idempotency_key: a stable key for this logical message.
        :raises BadRequestError: invalid arguments (before any request) or refused.
        """
        check_channel(channel)
        check_event(event)
        encoded = check_data(data)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        body = publish_frame(event, encoded, persist, channel=channel).encode()
        sent_at = time.monotonic()
        raw = self._http.request(
            "POST",
            "/edge/realtime",
            body=body,
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else None,
            retry_mode=RETRY_ALWAYS if idempotency_key else RETRY_UNSENT,
            context=f"publish to {channel!r}",
        )
        ack = PublishAck.from_wire(
            json_object(raw, f"publish to {channel!r} (POST /edge/realtime)"), channel, event
        )
        self._published(ack, time.monotonic() - sent_at)
        return ack

    def _published(self, ack: PublishAck, seconds: float) -> None:
        """Fire ``on_published`` (``channel=None``) for an HTTP publish; failures are logged."""
        fields = {"channel": None, "ack": ack, "seconds": seconds}
        call_hook(self.plugin_manager, "on_published", fields, _log_hook_failure)

    def history(self, channel: str, after: int = 0, limit: int = 50) -> List[Message]:
        """One page: at most ``limit`` (default 50) persisted messages past ``after``, oldest first.

        For every message, use :meth:`iter_history`, which pages for you.

        :param channel: the channel name.
        :param after: id cursor (exclusive); 0 for the beginning.
        :param limit: page size, 1 to 100 (the API's default is 50).
        """
        check_channel(channel)
        check_after(after)
        check_limit(limit)
        raw = self._http.request(
            "GET",
            "/edge/realtime/history",
            params={"channel": channel, "after": after, "limit": limit},
            retry_mode=RETRY_ALWAYS,
            context=f"history of {channel!r}",
        )
        context = f"history of {channel!r} (GET /edge/realtime/history)"
        return history_page(raw, context, channel, after)

    def iter_history(self, channel: str, after: int = 0, page_size: int = 100) -> Iterator[Message]:
        """Every persisted message with ``id > after``, fetched page by page, lazily.

        :param channel: the channel name.
        :param after: id cursor (exclusive).
        :param page_size: messages per request, 1 to 100.
        """
        check_channel(channel)
        check_after(after)
        check_limit(page_size)
        cursor = after
        while True:
            # history() checked that every id is past the cursor, so each page advances.
            page = self.history(channel, after=cursor, limit=page_size)
            if not page:
                return
            yield from page
            cursor = page[-1].id or cursor

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Run SQL on the tenant database (``POST /edge/database``); return the rows.

        Not retried once sent: a write must not run twice.

        :param query: the SQL text with ``?`` placeholders.
        :param params: placeholder values.
        """
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError("query must be a non-empty str")
        check_text(query, "query")
        if params is not None and not isinstance(params, (list, tuple)):
            # A str or dict would be split into characters or keys, silently.
            raise InvalidArgumentTypeError("params must be a list or tuple of values")
        values = list(params or [])
        check_data(values, "params")
        raw = self._http.request(
            "POST",
            "/edge/database",
            body=encode_json({"query": query, "params": values}),
            retry_mode=RETRY_UNSENT,
            context="sql",
        )
        return sql_rows(raw, "sql (POST /edge/database)")

    def provision(self, write_region: Optional[str] = None) -> Dict[str, Any]:
        """Provision the realtime resource (``POST /api/resources/realtime``).

        :param write_region: D1 region or alias (``us``, ``eu``, ``apac`` …).
        :returns: the server's JSON response.
        """
        body = encode_json({"write_region": write_region}) if write_region else None
        raw = self._http.request(
            "POST", "/api/resources/realtime", body=body, app_auth=True, context="provision"
        )
        return json_object(raw, "provision (POST /api/resources/realtime)")

    def deprovision(self) -> Dict[str, Any]:
        """Delete the realtime resource (``DELETE /api/resources/realtime``).

        :returns: the server's JSON response.
        """
        raw = self._http.request(
            "DELETE", "/api/resources/realtime", app_auth=True, context="deprovision"
        )
        return json_object(raw, "deprovision (DELETE /api/resources/realtime)")

    def send_dm_request(
        self, from_user: Union[str, int], to_user: Union[str, int], **extra: Any
    ) -> PublishAck:
        """Publish a ``dm_request`` to ``user:<to_user>``; see :func:`cohrt_sync.send_dm_request`.

        :param from_user: the requesting user id.
        :param to_user: the recipient user id.
        :param extra: more JSON fields for the notification data.
        """
        return _send_dm_request(self, from_user, to_user, extra=extra)
