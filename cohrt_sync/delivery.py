"""Exactly-once, in-order delivery of one channel's messages: the :class:`DeliveryLedger`.

A channel hands the ledger every live message and, after each reconnect, asks
it to recover what history holds beyond the cursor. The ledger decides which
messages reach ``emit``: each persisted message once, in id order, whether it
came live, from history, or both. It needs only a history iterator and an
emit callable, so it runs (and is tested) without a socket or a thread; the
channel calls it from its dispatcher thread only.

Servers that put ids on live frames make this simple (a window of seen ids).
Servers that do not (the cloud) are handled by matching content fingerprints
against history rows; docs/client.md, "When live frames carry no id",
describes the scheme step by step.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
from typing import Any, Callable, Counter, Deque, Iterable, List, NamedTuple, Optional

from .errors import CohrtError
from .models import Message

__all__ = ["DeliveryLedger", "Recovery", "fingerprint"]

log = logging.getLogger("cohrt_sync.delivery")

#: How many delivered ids / fingerprints are remembered for de-duplication.
DEDUPE_WINDOW = 10_000
#: Id-less fingerprints kept before they are reconciled against history.
PENDING_COMPACT_AT = 2_000
#: While history keeps showing nothing new (a channel of non-persisted
#: frames), the interval doubles up to this: each reconciliation is an HTTP
#: history read, which costs time on the dispatcher and counts against quotas.
PENDING_COMPACT_MAX = 16_000

#: Fingerprints of recovered rows kept to drop their live repeats: the
#: newest ones only, since only rows committed after the new socket
#: subscribed (the tail of the walk) can still arrive live.
REPLAY_WINDOW = 10_000

#: ``history(after)``: persisted messages with ``id > after``, in id order.
History = Callable[[int], Iterable[Message]]


def fingerprint(event: str, data: Any, created_at_ms: Optional[int]) -> str:
    """A content key used to match id-less live frames against history rows.

    :param event: the event name.
    :param data: the decoded payload.
    :param created_at_ms: the server timestamp.
    """
    try:
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        body = repr(data)
    return f"{created_at_ms}\x1f{event}\x1f{body}"


def _fp(msg: Message) -> str:
    return fingerprint(msg.event, msg.data, msg.created_at_ms)


def _digest(fp: str) -> bytes:
    # 16 bytes instead of the payload's JSON: a 90k-message catch-up keeps
    # kilobytes, not the recovered data twice over.
    return hashlib.blake2b(fp.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _Kept:
    """Id-less live deliveries kept for matching: event, data and time, in three lists.

    Not the Message objects: strings, numbers and JSON objects of them are
    not tracked by the garbage collector, so thousands of kept deliveries add
    nothing to its passes, where as many Messages (slotted objects) would be
    walked by each one, and would trigger full collections as they pile up.
    Lists, not deques: an empty list holds no storage, where an empty deque
    is 0.75 KiB, and every idle channel has one of these. They only grow at
    the end; the oldest are dropped in one slice (:meth:`keep_newest`).
    """

    __slots__ = ("data", "events", "times")

    def __init__(self) -> None:
        self.events: List[str] = []
        self.data: List[Any] = []
        self.times: List[Optional[int]] = []

    def __len__(self) -> int:
        return len(self.events)

    def add(self, event: str, data: Any, created_at_ms: Optional[int]) -> None:
        self.events.append(event)
        self.data.append(data)
        self.times.append(created_at_ms)

    def keep_newest(self, count: int) -> None:
        drop = len(self.events) - count
        if drop > 0:
            del self.events[:drop], self.data[:drop], self.times[:drop]

    def fingerprints(self) -> List[str]:
        return [fingerprint(*kept) for kept in zip(self.events, self.data, self.times)]


class Recovery(NamedTuple):
    """What :meth:`DeliveryLedger.recover` did.

    :param delivered: messages emitted from history.
    :param error: why history could not be read to the end, or None.
    """

    delivered: int
    error: Optional[CohrtError]


class DeliveryLedger:
    """Decides which messages of one channel are emitted, so each is emitted once.

    :param history: ``history(after)`` iterates persisted messages after an id.
    :param emit: called with each message to deliver.
    :param match_idless: remember id-less live messages so :meth:`recover` can
        tell them apart from missed ones (the channel's ``catch_up``).
    :param name: the channel name, for log lines.
    """

    def __init__(
        self,
        history: History,
        emit: Callable[[Message], None],
        *,
        match_idless: bool = True,
        name: str = "",
    ) -> None:
        self._history = history
        self._emit = emit
        self._match_idless = match_idless
        self._name = name
        #: Highest persisted id known delivered: where the next recovery starts.
        self.last_id: Optional[int] = None
        #: Epoch ms the subscription began; without a cursor, older rows are not missed.
        self.opened_at_ms = 0
        #: True after a failed recovery: live messages are withheld until one
        #: succeeds, since they are newer than the gap it could not fill.
        self.gap_open = False
        # OrderedDict, not dict: evicting a dict's oldest key with next(iter())
        # rescans its deleted slots, about 5 us per message once the window is full.
        self._seen_ids: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._ids_seen = False
        # Id-less messages delivered live since the cursor; fingerprinted lazily.
        self._pending = _Kept()
        self._compact_at = PENDING_COMPACT_AT
        # Digests of the newest rows the last recovery emitted, while live
        # frames may still repeat them (until a live frame is newer than all).
        self._replayed: Counter[bytes] = collections.Counter()
        #: Made by the first recovery that replays an id-less row: an empty
        #: deque is 0.75 KiB, and an idle channel never needs one.
        self._replay_order: Optional[Deque[bytes]] = None
        self._replayed_until_ms = 0

    def _remember_id(self, msg_id: int) -> None:
        self._seen_ids[msg_id] = None
        if len(self._seen_ids) > DEDUPE_WINDOW:
            self._seen_ids.popitem(last=False)
        if self.last_id is None or msg_id > self.last_id:
            self.last_id = msg_id

    def deliver_live(self, msg: Message) -> None:
        """Emit a message received live unless it was delivered already.

        :param msg: the message, in arrival order.
        """
        if self.gap_open:
            # Newer than a gap we could not fill: the next recovery emits it in order.
            return
        if msg.id is not None:
            if not self._ids_seen:
                # Ids dedupe from now on: release what id-less matching kept.
                self._ids_seen = True
                self._pending = _Kept()
                self._release_replayed()
            seen = self._seen_ids
            if msg.id in seen:
                return
            # _remember_id, inlined: this runs for every message with an id.
            seen[msg.id] = None
            if len(seen) > DEDUPE_WINDOW:
                seen.popitem(last=False)
            if self.last_id is None or msg.id > self.last_id:
                self.last_id = msg.id
            self._emit(msg)
            return
        if self._ids_seen:
            # This server puts ids on persisted frames, so an id-less one was
            # never persisted: history cannot hold it, nothing to reconcile.
            self._emit(msg)
            return
        if self._replayed:
            created = msg.created_at_ms
            if created is not None and created > self._replayed_until_ms:
                # Live frames are now newer than anything the recovery emitted.
                self._release_replayed()
            else:
                digest = _digest(_fp(msg))
                if self._replayed[digest] > 0:
                    # Already emitted from history during the last recovery.
                    self._replayed[digest] -= 1
                    return
        if self._match_idless:
            self._pending.add(msg.event, msg.data, msg.created_at_ms)
        self._emit(msg)
        if len(self._pending.events) >= self._compact_at:
            self._compact_pending()

    def _release_replayed(self) -> None:
        self._replayed = collections.Counter()
        self._replay_order = None

    def _remember_replayed(self, fp: str, created_at_ms: Optional[int]) -> None:
        digest = _digest(fp)
        self._replayed[digest] += 1
        order = self._replay_order
        if order is None:
            order = self._replay_order = collections.deque()
        order.append(digest)
        if len(order) > REPLAY_WINDOW:
            old = order.popleft()
            left = self._replayed[old] - 1
            if left > 0:
                self._replayed[old] = left
            else:
                del self._replayed[old]
        self._replayed_until_ms = max(self._replayed_until_ms, created_at_ms or 0)

    def _compact_pending(self) -> None:
        """Give id-less live deliveries their ids by matching them in history.

        Walks history after the cursor in id order; each row whose fingerprint
        was delivered live advances the cursor. The walk stops at the first
        row not seen live yet (its frame is still queued). Pending messages
        older than the last match were never persisted (``persist: false``).
        """
        # Fingerprints cost a JSON encoding each: make them only once history
        # has a row to match (a channel of non-persisted frames never does).
        fps: List[str] = []
        counts: Optional[Counter[str]] = None
        matched: Counter[str] = collections.Counter()
        last_match_ms: Optional[int] = None
        try:
            for item in self._history(self.last_id or 0):
                assert item.id is not None
                if item.id in self._seen_ids:
                    continue
                if counts is None:
                    self._compact_at = PENDING_COMPACT_AT
                    fps = self._pending.fingerprints()
                    counts = collections.Counter(fps)
                fp = _fp(item)
                if counts[fp] <= 0:
                    break
                counts[fp] -= 1
                matched[fp] += 1
                self._remember_id(item.id)
                last_match_ms = item.created_at_ms
        except CohrtError as e:
            log.warning("channel %s: could not reconcile live messages: %s", self._name, e)
        if counts is None:
            # Nothing persisted after the cursor: wait longer before asking again.
            self._compact_at = min(self._compact_at * 2, PENDING_COMPACT_MAX)
        pending = self._pending
        if not matched:
            survivors = pending
        else:
            survivors = _Kept()
            for event, data, created, fp in zip(pending.events, pending.data, pending.times, fps):
                if matched[fp] > 0:
                    matched[fp] -= 1
                    continue
                if last_match_ms is not None and (created or 0) < last_match_ms:
                    continue
                survivors.add(event, data, created)
        # Bounded memory wins over reconciling very old non-persisted frames.
        survivors.keep_newest(PENDING_COMPACT_AT // 2)
        self._pending = survivors

    def recover(self, stop: Callable[[], bool] = lambda: False) -> Recovery:
        """Emit what history has after the cursor and was not delivered live.

        Call it before any live message of a new connection, so missed
        messages come first, in id order. Rows whose fingerprint was delivered
        live without an id are matched and skipped. When history fails,
        :attr:`gap_open` withholds live messages until a later recovery
        succeeds, which keeps order and exactly-once.

        :param stop: polled between rows; True abandons the walk (the channel is closing).
        """
        self._release_replayed()
        self._replayed_until_ms = 0
        after = self.last_id
        delivered = 0
        min_created = None if after is not None else self.opened_at_ms
        # With ids on live frames, the id window dedupes: no fingerprints at all.
        idless = not self._ids_seen
        counts = collections.Counter(self._pending.fingerprints())
        try:
            for item in self._history(after or 0):
                assert item.id is not None
                if stop():
                    return Recovery(delivered, None)
                if item.id in self._seen_ids:
                    continue
                self._remember_id(item.id)
                if idless:
                    fp = _fp(item)
                    if counts[fp] > 0:
                        counts[fp] -= 1  # delivered live before the drop
                        continue
                if min_created is not None and (item.created_at_ms or 0) < min_created:
                    continue
                if idless:
                    self._remember_replayed(fp, item.created_at_ms)
                self._emit(item)
                delivered += 1
        except CohrtError as e:
            self.gap_open = True
            return Recovery(delivered, e)
        self.gap_open = False
        # Everything received live before the drop was committed before it was
        # broadcast, so unmatched pending messages were never persisted.
        self._pending = _Kept()
        return Recovery(delivered, None)
