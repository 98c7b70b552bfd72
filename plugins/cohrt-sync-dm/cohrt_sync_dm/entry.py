"""The installed plugin (entry point ``dm``), configured from the environment.

Imported only by a client that asks for it (``Client(entry_points=["dm"])``);
one :class:`~cohrt_sync_dm.DmAcceptor` is shared by every such client of the
process. ``COHRT_DM_ALLOW`` (required): ``*`` or comma-separated user ids;
``COHRT_DM_HISTORY`` (default 50); ``COHRT_DM_IDLE_SECONDS`` (default 600, 0: never).
"""

from __future__ import annotations

from . import DmAcceptor

__all__ = ["plugin"]

#: The object the ``dm`` entry point registers.
plugin = DmAcceptor.from_env()
