"""A channel's dispatcher thread: hooks in arrival order, catch-up, frames it drops.

:class:`FrameDispatcher` is the half of :class:`~cohrt_sync.Channel` that
runs user code. It takes items from the :class:`~cohrt_sync.inbox.Inbox`
one at a time, decides which frames are this channel's next message
(docs/client.md, "Frames the client drops"), hands messages to the
:class:`~cohrt_sync.delivery.DeliveryLedger`, and runs the catch-up after
each reconnect before any newer live frame. An internal error here is a
reported drop (``on_error``, then reconnect), never a dead thread.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Tuple

from . import plugins as _plugins
from ._cancel import cancel_on
from .delivery import DeliveryLedger
from .errors import CohrtConnectionError, ProtocolError
from .inbox import Inbox
from .models import Message, User
from .presence import Roster, user_from_wire

if TYPE_CHECKING:
    from .client import Client

__all__ = ["FrameDispatcher"]

log = logging.getLogger("cohrt_sync.channel")

#: Actions of the protocol itself: never a publication's action.
_CONTROL_ACTIONS = frozenset({"connected", "subscribed", "published", "publish", "join", "leave"})


class FrameDispatcher:
    """The dispatcher-thread half of a channel (mixed into :class:`~cohrt_sync.Channel`)."""

    # Fields of Channel (an attrs class with slots) that the dispatcher uses.
    client: Client
    name: str
    catch_up: bool
    _inbox: Inbox
    _closing: threading.Event
    _hooks: _plugins.ChannelHooks
    _ledger: DeliveryLedger
    _roster: Roster
    _healthy: bool

    def _force_reconnect(self) -> None:
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        """Close the channel (see :meth:`cohrt_sync.Channel.close`)."""
        raise NotImplementedError

    def _dispatch_main(self) -> None:
        try:
            self._inbox.run(self._dispatch, self._closing, self.client.dispatch_linger)
        finally:
            if self._closing.is_set():
                self._hooks.call("on_closed")

    def _dispatch(self, item: Any) -> None:
        try:
            if type(item) is dict:
                # The hot path: most items are frames.
                self._dispatch_frame(item)
            else:
                self._dispatch_event(item)
        except Exception as e:
            self._dispatch_crashed("frame" if type(item) is dict else item[0], e)

    def _dispatch_crashed(self, kind: Any, exc: Exception) -> None:
        """A bug or an unforeseen input broke dispatching: a reported drop, not a dead thread.

        Live messages are withheld (the ledger's open gap) until the catch-up of
        the reconnect this forces has delivered whatever was lost, in order.
        """
        log.error("channel %s: internal error dispatching %s; reconnecting", self.name, kind,
                  exc_info=exc)
        err = CohrtConnectionError(
            f"channel {self.name!r}: internal error dispatching {kind} "
            f"({type(exc).__name__}); reconnecting with catch-up"
        )
        err.__cause__ = exc
        if self.catch_up:
            self._ledger.gap_open = True
        try:
            self._hooks.call("on_error", error=err)
        finally:
            self._force_reconnect()

    def _dispatch_event(self, item: Tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "connected":
            self._hooks.call("on_connected")
        elif kind == "disconnected":
            self._hooks.call("on_disconnected", reason=item[1])
        elif kind == "reconnected":
            if self.catch_up:
                caught = self._recover_missed()
            else:
                caught = 0
                self._healthy = True
            self._resync_presence(item[1])
            self._hooks.call("on_reconnected", attempts=item[2], caught_up=caught)
        elif kind == "error":
            self._hooks.call("on_error", error=item[1])
        elif kind == "gave_up":
            # The reconnect gave up (reconnect_backoff.total ran out, or the
            # tenant is paused or deprovisioned): report it, then close
            # (on_closed follows).
            self._hooks.call("on_error", error=item[1])
            self.close()

    def _dispatch_frame(self, frame: Dict[str, Any]) -> None:
        action = frame.get("action")
        name = self.name
        if type(action) is str and "data" in frame:
            # A frame that carries data is a publication, whatever its event is
            # called: an event named "join" or "published" is still a message,
            # never presence or an ack (docs/client.md, "Frames the client drops").
            if frame.get("channel", name) == name and type(frame.get("event", action)) is str:
                self._ledger.deliver_live(Message.from_wire(frame, name))
            elif frame.get("channel", name) != name:
                self._drop_frame("a message of another channel", report=True)
            else:
                self._drop_frame("a message with a non-string event", report=True)
        elif action == "join":
            user = user_from_wire(frame.get("user"))
            if user is None:
                self._drop_frame("a join with no valid user id")
            elif user.id in self._roster:
                self._roster.add(user)
            else:
                self._hooks.call("on_join", user=user)
        elif action == "leave":
            last_seen = frame.get("last_seen")
            user = user_from_wire(frame.get("user"), last_seen=last_seen)
            if user is None:
                self._drop_frame("a leave with no valid user id")
            elif user.id in self._roster:
                self._hooks.call("on_leave", user=user, last_seen=last_seen)
        elif action in ("connected", "subscribed"):
            return
        elif type(action) is str and action not in _CONTROL_ACTIONS:
            # Shaped like a message but not one: worth telling the app.
            self._drop_frame("a message with no data", report=True)
        else:
            self._drop_frame("a frame with no string action, or a control action out of place")

    def _drop_frame(self, why: str, report: bool = False) -> None:
        log.warning("channel %s: dropped %s", self.name, why)
        if report:
            self._hooks.call(
                "on_error", error=ProtocolError(f"channel {self.name!r}: dropped {why}")
            )

    def _recover_missed(self) -> int:
        """Deliver from history what went by while disconnected; returns how many.

        When history cannot be read, the ledger holds back live frames and the
        socket is cut, so the next reconnect's recovery starts from the same
        cursor: order and exactly-once at the price of one more reconnect.
        """
        delivered, error = self._ledger.recover(self._closing.is_set)
        if error is None:
            self._healthy = True
        elif not self._closing.is_set():
            log.warning("channel %s: catch-up failed (%s); reconnecting again", self.name, error)
            self._hooks.call("on_error", error=error)
            self._force_reconnect()
        return delivered

    def _catch_up_history(self, after: int) -> Iterator[Message]:
        # Bound to the closing event, so close() can cut a read that hangs.
        with cancel_on(self._closing):
            yield from self.client.iter_history(self.name, after=after)

    def _resync_presence(self, users: List[User]) -> None:
        gone, came = self._roster.diff(users)
        for user in gone:
            self._hooks.call("on_leave", user=user, last_seen=None)
        for user in came:
            self._hooks.call("on_join", user=user)
        self._roster.replace(users)
