"""cohrt-sync-dm: the spec's DM pattern, run for you.

A :class:`DmAcceptor` answers ``dm_request`` publications on a personal
``user:<id>`` channel: when the requester passes the policy (an allow-list or
a callback) it opens the ``dm:<a>_<b>`` channel as the same user, delivers
the conversation's last messages through ``on_message`` before anything
live, and closes the DM channel once it has been idle for ``idle_timeout``.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Callable, Deque, Dict, Iterable, Mapping, Optional, Set, Tuple, Union

import cohrt_sync

__all__ = ["DmAcceptor", "Policy"]

__version__ = "0.1.0"

log = logging.getLogger("cohrt_sync_dm")

#: ``(requester id, personal channel, the dm_request message) -> accept?``
Policy = Callable[[str, Any, cohrt_sync.Message], bool]


class DmAcceptor:
    """A plugin accepting DM requests by policy and closing idle DM channels.

    Use it instead of your own ``on_dm_request`` that accepts (not with one:
    both would open the channel). Requests naming a DM channel that is not
    the one between the requester and this user are ignored: a request
    cannot lure the client into another conversation.

    :param allow: ``"*"`` (anyone), user ids allowed to open a DM, or a
        :data:`Policy` callback.
    :param history: messages of the conversation delivered when it opens
        (the most recent, oldest first; 0 for none).
    :param idle_timeout: seconds without a message in or out after which a DM
        channel it opened is closed (``None``: never).
    :raises ValueError: a negative ``history`` or a non-positive ``idle_timeout``.
    """

    def __init__(
        self,
        allow: Union[str, Iterable[Union[str, int]], Policy],
        *,
        history: int = 50,
        idle_timeout: Optional[float] = 600.0,
    ) -> None:
        if history < 0:
            raise ValueError(f"history must be 0 or more messages, not {history}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive seconds or None, not {idle_timeout}")
        if allow == "*":
            self._policy: Policy = lambda requester, channel, message: True
        elif callable(allow):
            self._policy = allow
        else:
            allowed = frozenset(str(a) for a in allow)  # type: ignore[union-attr]
            self._policy = lambda requester, channel, message: requester in allowed
        self.history = history
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._opening: Set[Tuple[int, str]] = set()
        # DM channels whose history is still to be delivered (by their on_connected,
        # which may run after subscribe() returned).
        self._history_due: Set[Tuple[int, str]] = set()
        # id(channel) -> (channel, monotonic time of its last message in or out)
        self._open: Dict[int, Tuple[Any, float]] = {}
        self._wake = threading.Event()
        self._reaper: Optional[threading.Thread] = None
        self._reaping = False

    def __repr__(self) -> str:
        return f"<DmAcceptor {len(self._open)} open>"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> DmAcceptor:
        """Build from ``COHRT_DM_ALLOW`` (``*`` or comma-separated user ids, required),
        ``COHRT_DM_HISTORY`` (default 50) and ``COHRT_DM_IDLE_SECONDS`` (default 600, 0: never).

        :param env: the environment to read (default ``os.environ``).
        :raises ValueError: a missing or bad variable, named.
        """
        env = os.environ if env is None else env
        allow = env.get("COHRT_DM_ALLOW", "").strip()
        if not allow:
            raise ValueError(
                "set COHRT_DM_ALLOW to '*' or the user ids allowed to open a DM (comma-separated), "
                "or pass cohrt_sync_dm.DmAcceptor(allow=...) in Client(plugins=[...])"
            )
        history, idle = env.get("COHRT_DM_HISTORY", "50"), env.get("COHRT_DM_IDLE_SECONDS", "600")
        if not history.isdigit():
            raise ValueError(f"COHRT_DM_HISTORY must be a number of messages, not {history!r}")
        try:
            idle_seconds = float(idle)
        except ValueError:
            raise ValueError(f"COHRT_DM_IDLE_SECONDS must be seconds, not {idle!r}") from None
        return cls(
            "*" if allow == "*" else [a.strip() for a in allow.split(",") if a.strip()],
            history=int(history),
            idle_timeout=idle_seconds if idle_seconds > 0 else None,
        )

    @property
    def open_channels(self) -> list:
        """The DM channels this plugin opened and that are still open."""
        with self._lock:
            return [channel for channel, _ in self._open.values()]

    # -- hooks ----------------------------------------------------------------------

    @cohrt_sync.hookimpl
    def on_dm_request(self, channel: Any, message: cohrt_sync.Message) -> None:
        """Accept the request when the policy allows it; otherwise log and ignore it."""
        data = message.data if isinstance(message.data, Mapping) else {}
        requester, name = data.get("from"), data.get("dm_channel")
        if not isinstance(requester, (str, int)) or not isinstance(name, str):
            log.warning("ignoring a malformed dm_request on %s", channel.name)
            return
        requester = str(requester)
        if name != cohrt_sync.dm_channel(requester, channel.user_id):
            log.warning("ignoring a dm_request from %s naming %s, not their DM with %s",
                        requester, name, channel.user_id)
            return
        if not self._policy(requester, channel, message):
            log.info("declined a dm_request from %s to %s (not allowed)", requester,
                     channel.user_id)
            return
        key = (id(channel.client), name)
        with self._lock:
            if key in self._opening or any(
                ch.client is channel.client and ch.name == name for ch, _ in self._open.values()
            ):
                return  # already open (a repeated request)
            self._opening.add(key)
            self._history_due.add(key)
        try:
            dm = cohrt_sync.accept_dm_request(channel, message)
        except BaseException:
            with self._lock:
                self._history_due.discard(key)
            raise
        finally:
            with self._lock:
                self._opening.discard(key)
        with self._lock:
            if not dm.closed:
                self._open[id(dm)] = (dm, time.monotonic())
                self._start_reaper_locked()

    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        """Deliver a DM's history on its own dispatcher, before any live message."""
        with self._lock:
            key = (id(channel.client), channel.name)
            ours = key in self._history_due
            self._history_due.discard(key)
        if not ours or self.history == 0:
            return
        anchor = channel.last_id  # every message after it is delivered live
        if anchor is None:
            log.warning("no history for %s: its position in history is unknown", channel.name)
            return
        recent: Deque[cohrt_sync.Message] = collections.deque(maxlen=self.history)
        for msg in channel.client.iter_history(channel.name, after=0):
            if msg.id is not None and msg.id > anchor:
                break
            recent.append(msg)
        for msg in recent:
            channel.hooks.call("on_message", message=msg)

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any) -> None:
        """A message in keeps a DM channel open."""
        self._touch(channel)

    @cohrt_sync.hookimpl
    def on_published(self, channel: Any) -> None:
        """A message out keeps it open too."""
        if channel is not None:
            self._touch(channel)

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        """Forget a closed DM channel; stop the idle reaper after the last one."""
        with self._lock:
            if self._open.pop(id(channel), None) is None or self._open:
                return
            reaper, busy = self._reaper, self._reaping
        self._wake.set()
        if reaper is not None and reaper is not threading.current_thread() and not busy:
            reaper.join(1.0)

    def _touch(self, channel: Any) -> None:
        with self._lock:
            if id(channel) in self._open:
                self._open[id(channel)] = (channel, time.monotonic())

    # -- closing idle channels -----------------------------------------------------------

    def _start_reaper_locked(self) -> None:
        if self.idle_timeout is None or (self._reaper is not None and self._reaper.is_alive()):
            return
        self._wake.clear()
        self._reaper = threading.Thread(
            target=self._reap, name=f"cohrt-sync-dm-idle-{id(self) & 0xFFFF:04x}", daemon=True
        )
        self._reaper.start()

    def _reap(self) -> None:
        assert self.idle_timeout is not None
        interval = max(0.05, min(5.0, self.idle_timeout / 4))
        while True:
            self._wake.wait(interval)
            now = time.monotonic()
            with self._lock:
                if not self._open:
                    self._reaper = None
                    return
                idle = [ch for ch, last in self._open.values() if now - last >= self.idle_timeout]
                self._reaping = bool(idle)
            for channel in idle:
                log.info("closing %s: idle for %.0fs", channel.name, self.idle_timeout)
                channel.close()
            with self._lock:
                self._reaping = False

    def close(self, timeout: float = 5.0) -> None:
        """Close every DM channel this plugin opened and stop the reaper.

        :param timeout: seconds for the channels and the thread together.
        """
        deadline = time.monotonic() + timeout
        for channel in self.open_channels:
            channel.close(max(0.5, deadline - time.monotonic()))
        self._wake.set()
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(max(0.0, deadline - time.monotonic()))
