"""What the :class:`~.hub.Hub` asks of the rest of the service: :class:`Backplane`.

One process is the whole service by default (:class:`LocalBackplane`): its
presence is its own sockets, it sequences every tenant's publishes itself
and there is nobody else to tell. Cluster mode (:mod:`.cluster`) puts Redis
behind the same questions, so the hub reads the same either way.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Awaitable, Callable, Dict, List, Optional, Protocol, Tuple

from .errors import ApiError

if TYPE_CHECKING:
    from .limits import SharedCounts
    from .pending import Pending
    from .state import StateStore
    from .tenantdb import TenantDB

#: One presence entry of a ``subscribed`` frame: ``{"id": ..., "name": ...}``.
PresenceList = List[Dict[str, Optional[str]]]
#: Opens a tenant's database on this node (None: the tenant has none).
OpenLocal = Callable[[str], Awaitable[Optional["TenantDB"]]]


class Socket(Protocol):
    """What the backplane reads of one open socket (:class:`.hub.Conn`)."""

    id: int
    tenant_id: str
    channel: str
    user_id: str
    name: Optional[str]


class Sockets(Protocol):
    """What the hub offers a backplane: this node's sockets (:class:`.hub.Hub`)."""

    live_ids: bool

    def finish(self, tenant_id: str, p: Pending) -> None:
        """Answer ``p``'s publisher and send its frame to the channel's sockets here."""

    def fan_out(self, tenant_id: str, channel: str, frame: str, id_: Optional[int]) -> None:
        """Send a live frame to the channel's sockets here (once per id)."""

    def to_channel(
        self, tenant_id: str, channel: str, text: str, skip: Optional[int] = None
    ) -> None:
        """Send ``text`` to the channel's sockets here, but the one numbered ``skip``."""

    def users_here(self) -> Dict[Tuple[str, str, str], Optional[str]]:
        """(tenant, channel, user) → name of every user with a socket here."""


class BackplaneDown(ApiError):
    """The service can't do this now (Redis unreachable, no owner): a 503 to retry."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message, retry_after=1)


class Backplane:
    """The single-process service: every answer is this process's own.

    Each method is a question the hub asks at one point of a socket's or a
    publish's life; a cluster subclass answers it across nodes.
    """

    #: Whether this process is one node of several (the hub skips nothing on it).
    clustered = False

    def start(self, hub: Sockets, state: StateStore, open_local: OpenLocal) -> None:
        """Begin: ``hub`` takes what other nodes decide, ``state`` learns their
        tenants, ``open_local`` opens a tenant's file here."""

    async def announce(self, base_url: str) -> None:
        """Tell the other nodes where this one serves, once it accepts connections."""

    def shared_counts(self) -> Optional[SharedCounts]:
        """Where the limits count together with other nodes; None: in this process."""
        return None

    def socket_counts(self) -> Dict[str, int]:
        """Open sockets per tenant, as the socket caps count them (here: this process's)."""
        return collections.Counter()

    async def close(self) -> None:
        """Stop, after the hub has closed its sockets."""

    async def join(
        self, conn: Socket, first_here: bool, local: PresenceList
    ) -> Tuple[PresenceList, bool]:
        """A socket opened: the presence its ``subscribed`` frame lists, and
        whether this node sends the ``join`` to the channel's other sockets.

        :param first_here: the user had no other socket on this channel here.
        :param local: the channel's users on this node, the new one included.
        """
        return local, first_here

    async def leave(self, conn: Socket, last_here: bool, name: Optional[str], now: float) -> bool:
        """A socket closed: whether this node sends the ``leave`` to the rest.

        :param last_here: it was the user's last socket on this channel here.
        """
        return last_here

    async def sequences_here(self, tenant_id: str) -> bool:
        """Whether this node writes and orders the tenant's publishes (its owner)."""
        return True

    async def forward(self, tenant_id: str, batch: List[Pending]) -> List[Pending]:
        """Hand ``batch`` to the tenant's owner and settle each item's answer.

        :returns: the items left to sequence here (this node became the owner).
        """
        return batch  # pragma: no cover - one node sequences everything

    async def broadcast(self, tenant_id: str, batch: List[Pending]) -> None:
        """Tell the other nodes about a batch this node has just sequenced."""

    async def database(self, tenant_id: str, open_local: OpenLocal) -> Optional[TenantDB]:
        """The tenant's database as this node may use it (the owner's, wherever it is)."""
        return await open_local(tenant_id)


#: The default: one process, no Redis.
LocalBackplane = Backplane

__all__ = [
    "Backplane",
    "BackplaneDown",
    "LocalBackplane",
    "OpenLocal",
    "PresenceList",
    "Socket",
    "Sockets",
]
