"""The delivery side of a channel: its dispatcher thread, the ledger, presence and the hooks.

A :class:`Dispatcher` takes items from the channel's
:class:`~cohrt_sync.inbox.Inbox` one at a time, on its own thread, and is
the only code of a channel that runs user code. It decides which frames are
this channel's next message (docs/client.md, "Frames the client drops"),
hands messages to the :class:`~cohrt_sync.delivery.DeliveryLedger`
(exactly once, in order), keeps the :class:`~cohrt_sync.presence.Roster`
and calls ``on_join``/``on_leave`` for the changes it says are news, and
runs the catch-up after each reconnect before any newer live frame. An
internal error here is a reported drop (``on_error``, then reconnect),
never a dead thread.

With ``idle`` set, the thread ends after that many seconds with nothing to
do, and the next item starts a new one under the same name (the
:class:`~cohrt_sync.inbox.Inbox` decides when, without losing an item): a
quiet channel keeps one thread, not two. Hooks still run on one thread at a
time, in arrival order; only the thread's identity changes across a quiet
spell.

It is given what it needs: the channel's name, whether it catches up, the
dispatch linger and idle time, the :class:`~cohrt_sync.port.HttpPort` that reads history,
the :class:`~cohrt_sync.hookcalls.ChannelHooks` to call, the inbox, the
closing event, and three callbacks into the rest of the channel: cut the
socket (to reconnect), a catch-up succeeded, close the channel.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from ._cancel import cancel_on, cut_request
from ._latch import Flag
from .delivery import DeliveryLedger
from .errors import CohrtConnectionError, ProtocolError
from .hookcalls import ChannelHooks
from .inbox import STOP, Inbox
from .models import Message, User
from .port import HttpPort
from .presence import Roster, user_from_wire
from .scrollback import iter_history

__all__ = ["Dispatcher"]

log = logging.getLogger("cohrt_sync.channel")

#: Actions of the protocol itself: never a publication's action.
_CONTROL_ACTIONS = frozenset({"connected", "subscribed", "published", "publish", "join", "leave"})


class Dispatcher:
    """Runs one channel's hooks, in arrival order, on its own thread.

    :param name: the channel name.
    :param catch_up: recover messages missed while disconnected from history.
    :param linger: seconds a busy dispatcher waits to batch frames.
    :param idle: seconds with nothing to do after which the thread ends, until
        the next item starts another (``None``: it runs until the channel closes).
    :param port: reads history for the catch-up.
    :param hooks: calls the channel's hooks.
    :param inbox: what the connection received, in order.
    :param closing: set when the channel closes.
    :param tag: the channel's tag in thread names.
    :param reconnect: cuts the socket, so the connection reconnects (and catches up).
    :param caught_up: tells the connection a reconnect's catch-up succeeded.
    :param close: closes the channel (after the reconnects gave up).
    """

    __slots__ = (
        "_catch_up",
        "_caught_up",
        "_close",
        "_closing",
        "_history_problems",
        "_hooks",
        "_idle",
        "_inbox",
        "_ledger",
        "_linger",
        "_port",
        "_reconnect",
        "_roster",
        "_tag",
        "_thread",
        "name",
    )

    def __init__(
        self,
        name: str,
        catch_up: bool,
        linger: float,
        idle: Optional[float],
        port: HttpPort,
        hooks: ChannelHooks,
        inbox: Inbox,
        closing: Flag,
        tag: str,
        *,
        reconnect: Callable[[], None],
        caught_up: Callable[[], None],
        close: Callable[[], None],
    ) -> None:
        self.name = name
        self._catch_up = catch_up
        self._linger = linger
        self._idle = idle
        self._port = port
        self._hooks = hooks
        self._inbox = inbox
        self._closing = closing
        self._tag = tag
        self._reconnect = reconnect
        self._caught_up = caught_up
        self._close = close
        self._roster = Roster()
        #: Kinds of broken history already reported (see _broken_history).
        self._history_problems: Set[str] = set()
        self._ledger = DeliveryLedger(
            self._catch_up_history, hooks.message, match_idless=catch_up, name=name
        )
        self._thread: Optional[threading.Thread] = None

    # -- what the channel reads and sets -----------------------------------------

    @property
    def presence(self) -> Dict[str, User]:
        """Users in the channel now (a copy)."""
        return self._roster.snapshot()

    @property
    def last_id(self) -> Optional[int]:
        """Highest persisted message id known delivered (the catch-up cursor)."""
        return self._ledger.last_id

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The dispatcher thread: None before it starts and while it is parked."""
        return self._thread

    def begin(self) -> None:
        """The subscription begins now: without a cursor, older rows are not missed."""
        self._ledger.opened_at_ms = int(time.time() * 1000)

    def subscribed(self, presence: List[User], last_id: Optional[int]) -> None:
        """The first socket is subscribed: who is present, and where catch-up starts.

        :param presence: the users of its ``subscribed`` frame.
        :param last_id: the catch-up anchor, or None (none read, or no catch-up).
        """
        self._ledger.last_id = last_id
        self._roster.replace(presence)

    def start(self) -> None:
        """Start the dispatcher thread."""
        thread = threading.Thread(
            target=self._main, name=f"cohrt-sync-dispatch-{self._tag}", daemon=True
        )
        # Set before it starts: close() joins whatever thread it finds here.
        self._thread = thread
        thread.start()

    def _resume(self) -> bool:
        """Start a new thread for the items that came after this one parked.

        Called under the inbox's lock by the thread that put the first of
        them: the reader, or ``close()`` putting ``STOP``.
        """
        try:
            self.start()
        except RuntimeError as e:  # the process is out of threads, or shutting down
            self._thread = None
            if self._closing.is_set():
                # begin_close() runs on_closed itself (at interpreter exit on 3.12).
                log.debug("channel %s: no dispatcher thread to close with (%s)", self.name, e)
            else:
                log.error("channel %s: could not start the dispatcher thread (%s); its "
                          "frames wait, and the next frame tries again", self.name, e)
            return False
        return True

    def _parked(self) -> None:
        # Under the inbox's lock, before any resume: the thread object goes
        # with the thread (it holds an Event and a lock, 2 KiB).
        self._thread = None

    def begin_close(self) -> None:
        """Ask the thread to finish what it is doing and stop (the channel's ``close()``).

        Frames received but not yet dispatched are dropped; the thread calls
        ``on_closed`` last. A parked dispatcher is started again for it; where
        no thread can be started (Python 3.12 at interpreter exit, when the
        ``atexit`` handler closes a forgotten client) ``on_closed`` runs here,
        on the closing thread, once.
        """
        self._inbox.put(STOP)
        if self._inbox.keep_parked():
            self._hooks.call("on_closed")

    def cut(self) -> None:
        """Cut the HTTP read the thread still waits on, if any: a catch-up's
        history page that hangs, or a request of a hook that did not finish
        in ``close()``'s grace period."""
        thread = self._thread
        # Alive only: a finished thread's ident may be another thread's now.
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            cut_request(thread)

    # -- the dispatcher thread -----------------------------------------------------

    def _main(self) -> None:
        parked = False
        try:
            parked = self._inbox.run(
                self._dispatch, self._closing, self._linger, self._idle, self._resume,
                self._parked,
            )
        finally:
            # A parked thread leaves on_closed to the one close() resumes.
            if not parked and self._closing.is_set():
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
        if self._catch_up:
            self._ledger.gap_open = True
        try:
            self._hooks.call("on_error", error=err)
        finally:
            self._reconnect()

    def _dispatch_event(self, item: Tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "connected":
            self._hooks.call("on_connected")
        elif kind == "disconnected":
            self._hooks.call("on_disconnected", reason=item[1])
        elif kind == "reconnected":
            if self._catch_up:
                caught = self._recover_missed()
            else:
                caught = 0
                self._caught_up()
            self._resync_presence(item[1])
            self._hooks.call("on_reconnected", attempts=item[2], caught_up=caught)
        elif kind == "error":
            self._hooks.call("on_error", error=item[1])
        elif kind == "gave_up":
            # The reconnect gave up (reconnect_backoff.total ran out, or the
            # tenant is paused or deprovisioned): report it, then close
            # (on_closed follows).
            self._hooks.call("on_error", error=item[1])
            self._close()

    def _dispatch_frame(self, frame: Dict[str, Any]) -> None:
        action = frame.get("action")
        name = self.name
        if type(action) is str and "data" in frame:
            # A frame that carries data is a publication, whatever its event is
            # called: an event named "join" or "published" is still a message,
            # never presence or an ack (docs/client.md, "Frames the client drops").
            if frame.get("channel", name) == name and type(frame.get("event", action)) is str:
                try:
                    msg = Message.from_wire(frame, name)
                except ProtocolError as e:
                    # An id or a time no int can hold (1e400 decodes as
                    # infinity): malformed like any other frame, not a crash.
                    self._drop_frame(f"a message whose {e}", report=True)
                    return
                self._ledger.deliver_live(msg)
            elif frame.get("channel", name) != name:
                self._drop_frame("a message of another channel", report=True)
            else:
                self._drop_frame("a message with a non-string event", report=True)
        elif action == "join":
            user = user_from_wire(frame.get("user"))
            if user is None:
                self._drop_frame("a join with no valid user id")
            elif self._roster.join(user):
                self._hooks.call("on_join", user=user)
        elif action == "leave":
            last_seen = frame.get("last_seen")
            user = user_from_wire(frame.get("user"), last_seen=last_seen)
            if user is None:
                self._drop_frame("a leave with no valid user id")
            elif self._roster.leave(user.id):
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

        History that breaks the API's contract is no failure: the walk drops
        what it can prove wrong, delivers the rest and reports each kind once
        (:meth:`_broken_history`), and a walk the server never lets advance
        ends there. When history cannot be read at all (unreachable, an
        answer that is no page), the ledger holds back live frames and the
        socket is cut, so the next reconnect's recovery starts from the same
        cursor: order and exactly-once at the price of one more reconnect.
        """
        delivered, error = self._ledger.recover(self._closing.is_set)
        if error is None:
            self._caught_up()
        elif not self._closing.is_set():
            log.warning("channel %s: catch-up failed (%s); reconnecting again", self.name, error)
            self._hooks.call("on_error", error=error)
            self._reconnect()
        return delivered

    def _catch_up_history(self, after: int) -> Iterator[Message]:
        # Bound to the closing event, so close() can cut a read that hangs.
        with cancel_on(self._closing):
            yield from iter_history(self._port, self.name, after=after, report=self._broken_history)

    def _broken_history(self, kind: str, error: ProtocolError) -> None:
        """History broke the API's contract: the walk dropped what it could prove
        wrong and went on. Each kind is told once per channel, not per page or
        per reconnect: a server with an off-by-one says the same every time."""
        if kind in self._history_problems:
            log.debug("channel %s: %s", self.name, error)
            return
        self._history_problems.add(kind)
        log.warning("channel %s: %s", self.name, error)
        self._hooks.call("on_error", error=error)

    def _resync_presence(self, users: List[User]) -> None:
        """After a reconnect: a leave for each user gone, a join for each one come."""
        roster = self._roster
        gone, came = roster.diff(users)
        for user in gone:
            roster.leave(user.id)
            self._hooks.call("on_leave", user=user, last_seen=None)
        for user in came:
            roster.join(user)
            self._hooks.call("on_join", user=user)
        # Known users' names from the fresh list.
        roster.replace(users)
