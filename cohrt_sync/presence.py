"""Who is in a channel: the :class:`Roster` and the built-in plugin that keeps it current.

The roster is the only place presence changes. The channel seeds it from each
``subscribed`` frame and refreshes known users from ``join`` frames; the
:class:`PresenceTracker` plugin (registered as ``cohrt_sync.presence``)
applies every ``on_join``/``on_leave``, first, so other implementations of
those hooks already see the new map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, Tuple

from .hookspecs import hookimpl
from .models import User

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["PresenceTracker", "Roster"]


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
