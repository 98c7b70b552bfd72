"""The installed plugin (entry point ``journal``), configured from the environment.

Imported only by a client that asks for it (``Client(entry_points=["journal"])``);
one :class:`~cohrt_sync_journal.Journal` is shared by every such client of the process.

* ``COHRT_JOURNAL_PATH`` (required): the journal file; ``.db``/``.sqlite`` mean SQLite.
* ``COHRT_JOURNAL_FORMAT``: ``jsonl`` or ``sqlite``, overriding the suffix.
* ``COHRT_JOURNAL_ROTATE_BYTES``: rotate past this size.
* ``COHRT_JOURNAL_ROTATE_DAILY``: ``1`` to rotate when the UTC day changes.
* ``COHRT_JOURNAL_KINDS``: comma-separated kinds to keep (default all).
"""

from __future__ import annotations

from . import Journal

__all__ = ["plugin"]

#: The object the ``journal`` entry point registers.
plugin = Journal.from_env()
