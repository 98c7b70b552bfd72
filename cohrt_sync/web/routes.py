"""The token, history and publish routes as plain calls: values in, an :class:`Answer` out.

A framework adapter (:mod:`cohrt_sync.flask`, :mod:`cohrt_sync.django`)
reads the request (who is logged in, the body's bytes, the query), calls
one method of :class:`RealtimeRoutes` and turns the :class:`Answer` into
its own response. Each route loads the user (401 without one), checks its
input (400, :mod:`cohrt_sync.web.inputs`), asks the channel policy (403
when ``authorize`` says no, or when the app set none;
:mod:`cohrt_sync.web.policy`), and talks to the realtime API with the
app's key, which never reaches the browser. The token route also spends
one of the user's token budget (429). Every
:class:`~cohrt_sync.CohrtError` becomes a JSON error
(:mod:`cohrt_sync.web.errors`); every answer is ``Cache-Control: private,
no-store``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import attrs

from .. import scrollback
from ..client import Client
from ..errors import CohrtError
from ..models import Message, User, check_user_id
from .answer import Answer, private
from .errors import RouteError, error_answer
from .inputs import (
    bad_request,
    channel_arg,
    int_arg,
    json_body,
    newest_arg,
    publish_request,
    scoped_idempotency_key,
)
from .policy import Authorize, MintBudget, check_policy

__all__ = ["Body", "LoadedUser", "RealtimeRoutes", "as_user", "message_json"]

log = logging.getLogger("cohrt_sync.web")

#: What an app's user hook returns: ``(user_id, name)``, a bare id, a ``User``, or None.
LoadedUser = Union[None, str, int, Tuple[Union[str, int], Optional[str]], User]


@attrs.frozen
class Body:
    """A request's body as it came: the route decodes it only if it is JSON."""

    #: The ``Content-Type`` header, None when absent.
    content_type: Optional[str]
    #: The bytes.
    data: bytes


def as_user(loaded: LoadedUser) -> Optional[User]:
    """The :class:`~cohrt_sync.User` an app's user hook names, or None.

    :param loaded: the hook's answer.
    :raises BadRequestError: the id is not a valid user id.
    """
    if loaded is None or isinstance(loaded, User):
        return loaded
    if isinstance(loaded, tuple):
        uid, name = loaded
        return User(id=check_user_id(uid), name=None if name is None else str(name))
    return User(id=check_user_id(loaded))


def message_json(msg: Message) -> Dict[str, Any]:
    """One history item, in the edge API's shape.

    :param msg: the message.
    """
    return {
        "id": msg.id,
        "channel": msg.channel,
        "event": msg.event,
        "action": msg.action,
        "data": msg.data,
        "created_at_ms": msg.created_at_ms,
    }


def _user_json(user: User) -> Dict[str, Optional[str]]:
    return {"id": user.id, "name": user.name}


class RealtimeRoutes:
    """One app's realtime routes, free of any web framework.

    :param client: returns the app's :class:`~cohrt_sync.Client`, made on
        first use (so an app without a key answers 503 only once a route is
        asked, after the user, input and policy checks).
    :param token_ttl: returns the seconds a connection token can open a
        socket (read per request, so a changed setting counts).
    :param mint_budget: each user's allowance of tokens, or None.
    :param how_to_set_policy: the framework's way to set ``authorize`` and
        where it is documented, for the 403 and the log.
    """

    def __init__(
        self,
        client: Callable[[], Client],
        *,
        token_ttl: Callable[[], int],
        mint_budget: Optional[MintBudget],
        how_to_set_policy: str,
    ) -> None:
        self._client = client
        self.token_ttl = token_ttl
        self.mint_budget = mint_budget
        self.how_to_set_policy = how_to_set_policy
        self._warned_no_policy = False

    # -- what every route asks ---------------------------------------------------

    def user(self, load: Callable[[], LoadedUser]) -> User:
        """The logged-in user, from the app's hook.

        :param load: the hook, bound to the request.
        :raises RouteError: 401 when nobody is logged in.
        """
        user = as_user(load())
        if user is None:
            raise RouteError("not logged in", 401, "UNAUTHENTICATED")
        return user

    def check(self, authorize: Optional[Authorize], user: User, channel: str, action: str) -> None:
        """Raise a 403 :class:`RouteError` unless ``authorize`` allows ``action``.

        Without ``authorize`` it always raises, and logs once why.

        :param authorize: the app's policy, bound to the request; None when unset.
        :param user: the logged-in user.
        :param channel: the channel asked for.
        :param action: ``"subscribe"``, ``"history"`` or ``"publish"``.
        """
        if authorize is None and not self._warned_no_policy:
            self._warned_no_policy = True
            log.warning(
                "the realtime routes refuse every channel: no authorize callback (%s)",
                self.how_to_set_policy,
            )
        check_policy(authorize, user, channel, action, how_to_set=self.how_to_set_policy)

    # -- the routes ---------------------------------------------------------------

    def token(
        self, load_user: Callable[[], LoadedUser], body: Body, authorize: Optional[Authorize]
    ) -> Answer:
        """``POST token``: a connection token for the user, ``{token, url, expires_in, user}``.

        :param load_user: the app's user hook, bound to the request.
        :param body: ``{"channel": ...}`` as JSON.
        :param authorize: the app's policy, bound to the request, or None.
        """
        try:
            user = self.user(load_user)
            channel = channel_arg(json_body(body.content_type, body.data).get("channel"))
            self.check(authorize, user, channel, "subscribe")
            if self.mint_budget is not None:
                # Before the tenant's shared bucket: one user must not empty it for all.
                self.mint_budget.take(user.id)
            tok = self._client().mint_token(user.id, name=user.name, ttl=self.token_ttl())
        except CohrtError as e:
            return error_answer(e)
        return private(
            {
                "token": tok.token,
                "url": tok.ws_url(channel),
                "expires_in": tok.expires_in,
                "user": _user_json(user),
            }
        )

    def history(
        self,
        load_user: Callable[[], LoadedUser],
        query: Mapping[str, str],
        authorize: Optional[Authorize],
    ) -> Answer:
        """``GET history``: persisted messages, oldest first, ``{"items": [...]}``.

        Query: ``channel``; then either ``after`` (0) and ``limit`` (50, at
        most 100) for the page past ``after``, or ``newest=N`` (1 to 100) for
        the channel's newest N messages. ``latest=1`` adds ``last_id``, the
        channel's highest id (where a browser's catch-up starts).

        :param load_user: the app's user hook, bound to the request.
        :param query: the query arguments.
        :param authorize: the app's policy, bound to the request, or None.
        """
        try:
            user = self.user(load_user)
            channel = channel_arg(query.get("channel"))
            after = int_arg("after", query.get("after"), 0)
            limit = int_arg("limit", query.get("limit"), 50)
            newest = newest_arg(query.get("newest"))
            if newest is not None and (query.get("after") or query.get("limit")):
                raise bad_request(
                    "send newest alone, or after and limit: newest is the channel's newest"
                    " messages, after pages forward from an id"
                )
            self.check(authorize, user, channel, "history")
            client = self._client()
            payload: Dict[str, Any] = {}
            if query.get("latest") in ("1", "true"):
                payload["last_id"] = scrollback.last_id(client, channel)
            if newest is not None:
                msgs = client.newest(channel, newest)
            else:
                msgs = client.history(channel, after=after, limit=limit)
        except CohrtError as e:
            return error_answer(e)
        payload["items"] = [message_json(m) for m in msgs]
        return private(payload)

    def publish(
        self,
        load_user: Callable[[], LoadedUser],
        body: Body,
        idempotency_key: Optional[str],
        authorize: Optional[Authorize],
    ) -> Answer:
        """``POST publish``: publish for the user; ``data.sender`` is set to who they are.

        Body: ``{"channel", "data" (a JSON object), "event" ("message"),
        "persist" (true)}``. The ``Idempotency-Key`` is passed on, scoped to
        the user, so a browser may retry the same publish safely.

        :param load_user: the app's user hook, bound to the request.
        :param body: the request's body.
        :param idempotency_key: the request's ``Idempotency-Key`` header, or None.
        :param authorize: the app's policy, bound to the request, or None.
        """
        try:
            user = self.user(load_user)
            req = publish_request(json_body(body.content_type, body.data))
            key = scoped_idempotency_key(user.id, idempotency_key)
            self.check(authorize, user, req.channel, "publish")
            # Whatever the browser put there, the sender is the verified user.
            stamped = dict(req.data, sender=_user_json(user))
            ack = self._client().publish(
                req.channel, stamped, event=req.event, persist=req.persist, idempotency_key=key
            )
        except CohrtError as e:
            return error_answer(e)
        return private(
            {
                "channel": ack.channel,
                "event": ack.event,
                "action": ack.action,
                "created_at_ms": ack.created_at_ms,
                "id": ack.id,
                "data": stamped,
            }
        )
