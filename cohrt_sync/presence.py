"""Who is in a channel: the :class:`Roster`, and presence entries read off the wire.

The roster is the one place presence changes, and it decides which changes
are news: a ``join`` of a user already present only refreshes their entry,
a ``leave`` of a user not present is nothing. Its owner, the channel's
:class:`~cohrt_sync.dispatcher.Dispatcher`, applies each change before it
calls ``on_join``/``on_leave``, so every implementation sees the new map;
plugins only read it (``channel.presence``).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .models import User

__all__ = ["Roster", "presence_list", "user_from_wire"]

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

    def join(self, user: User) -> bool:
        """Record ``user`` as present, replacing what was known of them.

        :param user: the user.
        :returns: True when they were not present: their arrival is news (``on_join``).
        """
        new = user.id not in self._users
        self._users[user.id] = user
        return new

    def leave(self, user_id: str) -> bool:
        """Record that ``user_id`` left.

        :param user_id: the user's id.
        :returns: True when they were present: their departure is news (``on_leave``).
        """
        return self._users.pop(user_id, None) is not None

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
