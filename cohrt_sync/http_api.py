"""The client's HTTP calls: one method per REST endpoint of the edge API.

:class:`HttpApi` does, for each call, the argument checks, the request over
an :class:`~cohrt_sync._http.HttpTransport` with the retry mode the endpoint
allows, and the reply turned into model objects. A
:class:`~cohrt_sync.Client` owns one and hands its calls on; a channel is
given it as its :class:`~cohrt_sync.port.HttpPort`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from ._answers import history_page, json_object, sql_rows, token_answer
from ._http import RETRY_ALWAYS, RETRY_IDEMPOTENT, RETRY_UNSENT, HttpTransport, encode_json
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
from .scrollback import iter_history

__all__ = ["HttpApi", "Published"]

#: Told of each HTTP publish: its ack, and the seconds from send to ack.
Published = Callable[[PublishAck, float], None]


def _nobody(ack: PublishAck, seconds: float) -> None:
    """The default :data:`Published`: nobody is told."""


class HttpApi:
    """The edge API's REST endpoints over one transport.

    :param transport: the HTTP transport (session, auth, retries, errors).
    :param published: told of each acknowledged HTTP publish (the client
        fires ``on_published`` from it).
    """

    __slots__ = ("_http", "_published", "base_url")

    def __init__(self, transport: HttpTransport, published: Published = _nobody) -> None:
        self._http = transport
        self._published = published
        #: The API root, put on each minted token for its socket URL.
        self.base_url = transport.base_url

    def mint_token(
        self, user_id: Union[str, int], name: Optional[str] = None, ttl: int = 300
    ) -> Token:
        """Mint a WebSocket connection token (``POST /edge/realtime/token``).

        :meth:`cohrt_sync.Client.mint_token` documents the arguments and errors.
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

        :meth:`cohrt_sync.Client.publish` documents the arguments and errors.
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
            # Retried after it may have been applied only where the server
            # says it deduplicates the key: elsewhere a retry could store it twice.
            retry_mode=RETRY_IDEMPOTENT if idempotency_key else RETRY_UNSENT,
            context=f"publish to {channel!r}",
            unsure="published",
        )
        ack = PublishAck.from_wire(
            json_object(raw, f"publish to {channel!r} (POST /edge/realtime)"), channel, event
        )
        self._published(ack, time.monotonic() - sent_at)
        return ack

    def history(self, channel: str, after: int = 0, limit: int = 50) -> List[Message]:
        """One page: at most ``limit`` (default 50) persisted messages past ``after``, oldest first.

        :meth:`cohrt_sync.Client.history` documents the arguments and errors.
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

        :meth:`cohrt_sync.Client.iter_history` documents the arguments and errors.
        """
        check_channel(channel)
        check_after(after)
        check_limit(page_size)
        yield from iter_history(self, channel, after, page_size)

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Run SQL on the tenant database (``POST /edge/database``); return the rows.

        :meth:`cohrt_sync.Client.sql` documents the arguments and errors.
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

        :meth:`cohrt_sync.Client.provision` documents the arguments and errors.
        """
        body = encode_json({"write_region": write_region}) if write_region else None
        raw = self._http.request(
            "POST", "/api/resources/realtime", body=body, app_auth=True, context="provision"
        )
        return json_object(raw, "provision (POST /api/resources/realtime)")

    def deprovision(self) -> Dict[str, Any]:
        """Delete the realtime resource (``DELETE /api/resources/realtime``).

        :meth:`cohrt_sync.Client.deprovision` documents the arguments and errors.
        """
        raw = self._http.request(
            "DELETE", "/api/resources/realtime", app_auth=True, context="deprovision"
        )
        return json_object(raw, "deprovision (DELETE /api/resources/realtime)")
