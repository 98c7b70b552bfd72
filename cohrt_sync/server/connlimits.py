"""Connection limits: the open-file limit, the connection cap below it, and
the listening socket's queue.

At start :func:`raise_nofile` raises the soft open-file limit towards the hard
one, :func:`resolve_limits` derives from it (and the settings) how many
connections may be served at once, and :func:`widen_listen_queue` lets the
kernel queue a burst of connects that asyncio accepts in small batches. The
cap itself is enforced in :mod:`.connguard`.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Optional

import attrs

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("cohrt_sync.server")

#: The soft open-file limit is raised towards the hard limit up to this.
NOFILE_TARGET = 8192
#: The ``backlog`` given to asyncio, which is also how many connections it
#: accepts per loop iteration. A refused connection is closed three
#: iterations after its accept (accept, protocol and transport,
#: connection_made, close), so four times this many descriptors are kept
#: free for accept bursts.
BACKLOG = 32
#: The kernel's queue of connections waiting to be accepted (see
#: :func:`widen_listen_queue`); they hold no descriptor of ours.
LISTEN_QUEUE = 1024


@attrs.frozen
class ConnLimits:
    """Connection limits resolved at start from the settings and the fd limit."""

    #: The soft ``RLIMIT_NOFILE`` in force (None where there is none).
    nofile: Optional[int]
    #: Most connections served at once; more get a 503.
    max_connections: int
    #: Most WebSockets one tenant may hold (its tier may allow fewer).
    max_tenant_sockets: int
    #: Refused connections allowed to linger while reading their 503.
    refusal_slots: int


def raise_nofile(target: int = NOFILE_TARGET) -> Optional[int]:
    """Raise the soft open-file limit towards ``min(hard, target)``; never lower it.

    :returns: the soft limit now in force, or None where the platform has none.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            log.info("raised the open-file limit from %d to %d", soft, want)
            soft = want
        except (ValueError, OSError) as e:  # pragma: no cover - a sandbox refusing
            log.warning("could not raise the open-file limit from %d: %s", soft, e)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def resolve_limits(config: Config, nofile: Optional[int]) -> ConnLimits:
    """The connection cap and the per-tenant socket share for ``config``.

    The cap leaves room below ``nofile`` for the server's own files (a 16th of
    the limit, at least 32: state and tenant databases with their WAL and shm
    files, three each; the listening socket; the loop's own descriptors), for
    accept bursts (see :data:`BACKLOG`), and for refused connections reading
    their 503.

    :raises ValueError: a setting out of range, or an fd limit too low to serve.
    """
    for name in ("header_timeout", "body_timeout", "keepalive_timeout", "send_timeout"):
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be a positive number of seconds")
    for name in ("max_connections", "max_tenant_sockets", "max_user_sockets", "user_socket_opens"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be 0 (automatic) or positive")
    if config.max_head_bytes < 1024:
        raise ValueError("max_head_bytes must be at least 1024")
    if nofile is None:
        allowed = config.max_connections or 10_000
        refusal_slots = 64
    else:
        reserve = max(32, nofile // 16)
        refusal_slots = max(8, nofile // 32)
        allowed = nofile - reserve - 4 * BACKLOG - refusal_slots
        if allowed < 16:
            raise ValueError(
                f"the open-file limit ({nofile}) is too low to serve; raise it (ulimit -n)"
            )
    cap = allowed
    if config.max_connections:
        if config.max_connections > allowed:
            log.warning(
                "max_connections %d is more than the open-file limit %s allows; using %d",
                config.max_connections,
                nofile,
                allowed,
            )
        cap = min(config.max_connections, allowed)
    tenant = config.max_tenant_sockets or max(1, cap // 2)
    return ConnLimits(nofile, cap, tenant, refusal_slots)


def widen_listen_queue(sock: Any) -> None:
    """Let the kernel queue :data:`LISTEN_QUEUE` connections on listening ``sock``.

    asyncio uses one number for the kernel's queue and for its accept batch;
    a small batch keeps descriptors in check, and a long queue keeps a burst
    of connects from waiting out SYN retransmits. ``listen`` again on a
    duplicate of the descriptor changes the queue of the same socket.
    """
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as dup:
            dup.listen(LISTEN_QUEUE)
    except OSError as e:  # pragma: no cover - the default queue still works
        log.debug("could not lengthen the listen queue: %s", e)
