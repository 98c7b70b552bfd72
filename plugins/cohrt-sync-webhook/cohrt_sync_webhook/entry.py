"""The installed plugin (entry point ``webhook``), configured from the environment.

Imported only by a client that asks for it (``Client(entry_points=["webhook"])``);
one :class:`~cohrt_sync_webhook.Webhook` is shared by every such client of the
process. Variables: ``COHRT_WEBHOOK_URL`` (comma-separated, required),
``COHRT_WEBHOOK_SECRET`` (required), ``COHRT_WEBHOOK_DEAD_LETTER``,
``COHRT_WEBHOOK_KINDS`` (default ``message``).
"""

from __future__ import annotations

from . import Webhook

__all__ = ["plugin"]

#: The object the ``webhook`` entry point registers.
plugin = Webhook.from_env()
