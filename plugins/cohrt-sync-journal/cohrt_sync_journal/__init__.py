"""cohrt-sync-journal: an append-only journal of every event a client sees.

Register a :class:`Journal` (``Client(plugins=[Journal("events.jsonl")])``) or
load the installed one (``Client(entry_points=["journal"])``, configured by
``COHRT_JOURNAL_*`` variables, see :mod:`cohrt_sync_journal.entry`). Each
record is one JSON object with ``ts`` (epoch seconds), ``kind`` and
``channel``; :func:`read` yields them back across rotated files and
:func:`replay` feeds them to another plugin's hooks, as if live.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Collection, Dict, Iterator, Mapping, Optional, Union

import attrs
import pluggy

import cohrt_sync
from cohrt_sync import hookspecs

from ._stores import JsonLinesStore, SqliteStore, journal_files, open_store

__all__ = ["KINDS", "Journal", "ReplayedChannel", "read", "replay"]

__version__ = "0.1.0"

#: Every kind of record a journal writes, one per hook it implements.
KINDS = frozenset(
    {"message", "join", "leave", "published", "connected", "disconnected",
     "reconnected", "error", "closed"}
)


class Journal:
    """A plugin appending a record for every hook call it receives.

    Writes are serialised (hooks of different channels run on different
    threads) and flushed per record, so a crash loses at most the record
    being written. A write that fails is logged by the channel and reported
    to ``on_error``; it never stops the channel.

    :param path: the active journal file; ``.db``/``.sqlite``/``.sqlite3`` mean SQLite.
    :param format: ``"jsonl"`` or ``"sqlite"`` (default: from the suffix).
    :param rotate_bytes: rotate once the active file reaches this many bytes.
    :param rotate_daily: rotate when the UTC day changes.
    :param kinds: which kinds of records to write (default all of :data:`KINDS`).
    :param clock: epoch-seconds clock (inject for tests).
    :raises ValueError: an unknown format or kind, or a non-positive ``rotate_bytes``.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        format: Optional[str] = None,
        rotate_bytes: Optional[int] = None,
        rotate_daily: bool = False,
        kinds: Optional[Collection[str]] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError(f"rotate_bytes must be positive, not {rotate_bytes}")
        unknown = set(kinds or ()) - KINDS
        if unknown:
            raise ValueError(f"unknown journal kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        self.path = Path(path)
        self.kinds = frozenset(kinds) if kinds is not None else KINDS
        self._store = open_store(self.path, format, rotate_bytes, rotate_daily)
        self._clock = clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    def write(self, kind: str, channel: str, **fields: Any) -> None:
        """Append one record (what each hook does; also for your own records).

        :param kind: the record's kind.
        :param channel: the channel name.
        :param fields: more JSON-serialisable fields.
        """
        if kind not in self.kinds:
            return
        record = {"ts": self._clock(), "kind": kind, "channel": channel, **fields}
        with self._lock:
            self._store.append(record)

    def rotate(self) -> Optional[Path]:
        """Rotate now (e.g. from a cron job); returns the rotated file, or ``None`` if empty."""
        with self._lock:
            return self._store.rotate() if self.path.exists() else None

    def close(self) -> None:
        """Close the file; a later record reopens it."""
        with self._lock:
            self._store.close()

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Journal:
        """Build a :class:`Journal` from ``COHRT_JOURNAL_*`` variables.

        :param env: the environment to read (default ``os.environ``); the
            variables are listed in :mod:`cohrt_sync_journal.entry`.
        :raises ValueError: a missing path or a bad value, saying which variable.
        """
        env = os.environ if env is None else env
        path = env.get("COHRT_JOURNAL_PATH")
        if not path:
            raise ValueError(
                "set COHRT_JOURNAL_PATH to the journal file, "
                "or pass cohrt_sync_journal.Journal(path) in Client(plugins=[...])"
            )
        size = env.get("COHRT_JOURNAL_ROTATE_BYTES")
        if size is not None and not size.isdigit():
            raise ValueError(f"COHRT_JOURNAL_ROTATE_BYTES must be a number of bytes, not {size!r}")
        kinds = env.get("COHRT_JOURNAL_KINDS")
        return cls(
            path,
            format=env.get("COHRT_JOURNAL_FORMAT") or None,
            rotate_bytes=int(size) if size else None,
            rotate_daily=env.get("COHRT_JOURNAL_ROTATE_DAILY", "") in ("1", "true", "yes"),
            kinds=[k.strip() for k in kinds.split(",") if k.strip()] if kinds else None,
        )

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: cohrt_sync.Message) -> None:
        """Record a publication."""
        self.write("message", channel.name, message=attrs.asdict(message))

    @cohrt_sync.hookimpl
    def on_join(self, channel: Any, user: cohrt_sync.User) -> None:
        """Record a join."""
        self.write("join", channel.name, user={"id": user.id, "name": user.name})

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: cohrt_sync.User, last_seen: Optional[str]) -> None:
        """Record a leave."""
        self.write("leave", channel.name, user={"id": user.id, "name": user.name},
                   last_seen=last_seen)

    @cohrt_sync.hookimpl
    def on_published(self, channel: Any, ack: cohrt_sync.PublishAck, seconds: float) -> None:
        """Record an acknowledged publish (``via`` ``"socket"`` or ``"http"``)."""
        self.write("published", ack.channel, ack=attrs.asdict(ack),
                   via="http" if channel is None else "socket", seconds=seconds)

    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        """Record a first subscription."""
        self.write("connected", channel.name)

    @cohrt_sync.hookimpl
    def on_disconnected(self, channel: Any, reason: str) -> None:
        """Record a drop."""
        self.write("disconnected", channel.name, reason=reason)

    @cohrt_sync.hookimpl
    def on_reconnected(self, channel: Any, attempts: int, caught_up: int) -> None:
        """Record a recovery."""
        self.write("reconnected", channel.name, attempts=attempts, caught_up=caught_up)

    @cohrt_sync.hookimpl
    def on_error(self, channel: Any, error: BaseException) -> None:
        """Record an error the channel survived (its type and message)."""
        self.write("error", channel.name, error=type(error).__name__, detail=str(error))

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        """Record a close."""
        self.write("closed", channel.name)


def read(path: Union[str, os.PathLike[str]], *, format: Optional[str] = None) -> Iterator[
    Dict[str, Any]
]:
    """Every record of the journal at ``path``, rotated files first, in write order.

    :param path: the active journal file (as given to :class:`Journal`).
    :param format: ``"jsonl"`` or ``"sqlite"`` (default: from the suffix).
    """
    active = Path(path)
    store = open_store(active, format, None, False)
    reader = SqliteStore.read if isinstance(store, SqliteStore) else JsonLinesStore.read
    for file in journal_files(active):
        yield from reader(file)


@attrs.frozen
class ReplayedChannel:
    """Stands in for the :class:`cohrt_sync.Channel` of a replayed record.

    :param name: the channel name recorded.
    """

    name: str
    replayed: bool = True

    def publish(self, *args: Any, **kwargs: Any) -> None:
        """Refused: a replay has no socket."""
        raise cohrt_sync.ChannelClosedError(f"channel {self.name!r} is a replay; it cannot publish")


def replay(
    path: Union[str, os.PathLike[str]],
    *plugins: object,
    format: Optional[str] = None,
    channel: Optional[str] = None,
) -> int:
    """Call the plugins' ``on_message``, ``on_join`` and ``on_leave`` for each recorded one.

    The hooks get a :class:`ReplayedChannel` and the recorded
    :class:`~cohrt_sync.Message`/:class:`~cohrt_sync.User`, in journal order,
    on the calling thread; an exception from a hook propagates.

    :param path: the active journal file.
    :param plugins: plugin objects, as given to ``Client(plugins=[...])``.
    :param format: ``"jsonl"`` or ``"sqlite"`` (default: from the suffix).
    :param channel: replay only this channel.
    :returns: how many records were replayed.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    count = 0
    for record in read(path, format=format):
        if channel is not None and record["channel"] != channel:
            continue
        kind, ch = record["kind"], ReplayedChannel(record["channel"])
        if kind == "message":
            pm.hook.on_message(channel=ch, message=cohrt_sync.Message(**record["message"]))
        elif kind in ("join", "leave"):
            user = cohrt_sync.User(**record["user"], last_seen=record.get("last_seen"))
            if kind == "join":
                pm.hook.on_join(channel=ch, user=user)
            else:
                pm.hook.on_leave(channel=ch, user=user, last_seen=record.get("last_seen"))
        else:
            continue
        count += 1
    return count
