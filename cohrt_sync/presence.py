"""Who is in a channel: the :class:`Roster` and the built-in plugin that keeps it current.

The roster is the only place presence changes. The channel seeds it from each
``subscribed`` frame and refreshes known users from ``join`` frames; the
:class:`PresenceTracker` plugin (registered as ``cohrt_sync.presence``)
applies every ``on_join``/``on_leave``, first, so other implementations of
those hooks already see the new map.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .hookspecs import hookimpl
from .models import User

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["PresenceTracker", "Roster", "presence_list", "user_from_wire"]

log = logging.getLogger("cohrt_sync.channel")


def user_from_wire(raw: Any, last_seen: Optional[str] = None) -> Optional[User]:
    """The :class:`User` of a presence entry, or None when the entry is not one.

    An entry must be an object whose ``id`` is a non-empty string or an
    integer; anything else (``None``, a list) would invent a user named
    ``"None"`` or ``"['a', 'b']"``. A ``name`` that is not a string is ignored.

    :param raw: the decoded entry.
    :param last_seen: the ``last_seen`` of a ``leave`` frame.
    """
    if not isinstance(raw, Mapping):
        return None
    uid = raw.get("id")
    if isinstance(uid, bool) or not isinstance(uid, (str, int)) or uid == "":
        return None
    name = raw.get("name")
    return User(id=str(uid), name=name if isinstance(name, str) else None, last_seen=last_seen)


def presence_list(raw: Any, channel: str) -> List[User]:
    """The users of a ``subscribed`` frame's ``presence``; malformed entries are dropped.

    :param raw: the frame's ``presence`` value.
    :param channel: the channel name, for the warning.
    """
    if not isinstance(raw, list):
        if raw is not None:
            log.warning("channel %s: 'subscribed' presence is not a list; ignored", channel)
        return []
    users = []
    for entry in raw:
        user = user_from_wire(entry)
        if user is None:
            log.warning("channel %s: dropped a presence entry with no valid user id", channel)
        else:
            users.append(user)
    return users


class Roster:
    """The users in one channel, by id."""

    __slots__ = ("_users",)

    def __init__(self) -> None:
        self._users: Dict[str, User] = {}

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def snapshot(self) -> Dict[str, User]:
        """A copy of the map, ``{user_id: User}``."""
        return dict(self._users)

    def add(self, user: User) -> None:
        """Record ``user`` as present (replacing what was known of them).

        :param user: the user.
        """
        self._users[user.id] = user

    def remove(self, user_id: str) -> None:
        """Record that ``user_id`` left (no-op if unknown).

        :param user_id: the user's id.
        """
        self._users.pop(user_id, None)

    def diff(self, users: Iterable[User]) -> Tuple[List[User], List[User]]:
        """Who left and who came, compared with a fresh list of present users.

        :param users: everyone present now (a reconnect's ``subscribed`` frame).
        :returns: ``(gone, came)``, each in a stable order.
        """
        fresh = {u.id: u for u in users}
        gone = [u for uid, u in self._users.items() if uid not in fresh]
        came = [u for uid, u in fresh.items() if uid not in self._users]
        return gone, came

    def replace(self, users: Iterable[User]) -> None:
        """Make the roster exactly ``users``.

        :param users: everyone present now.
        """
        self._users = {u.id: u for u in users}


class PresenceTracker:
    """Built-in plugin keeping ``channel.presence`` in step with join/leave.

    It runs first (``tryfirst``) so every other ``on_join``/``on_leave``
    implementation already sees the updated map.
    """

    @hookimpl(tryfirst=True)
    def on_join(self, channel: Channel, user: User) -> None:
        """Add ``user`` to the channel's presence."""
        channel.roster.add(user)

    @hookimpl(tryfirst=True)
    def on_leave(self, channel: Channel, user: User) -> None:
        """Remove ``user`` from the channel's presence."""
        channel.roster.remove(user.id)
