"""cohrt-sync-webhook: forwards a client's events to HTTP endpoints.

Each event becomes a signed JSON ``POST`` (see :mod:`cohrt_sync_webhook.signing`)
to every configured URL, sent by the plugin's own worker thread so that a slow
or dead endpoint never holds up a channel's hooks. Failed deliveries are
retried with a :class:`cohrt_sync.Retry` policy (backoff with jitter,
``Retry-After``, a time budget), then written to a dead-letter file.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attrs
import requests

import cohrt_sync
from cohrt_sync.retry import parse_retry_after

from .signing import SIGNATURE_HEADER, sign, verify

__all__ = ["DEFAULT_RETRY", "KINDS", "SIGNATURE_HEADER", "Webhook", "sign", "verify"]

__version__ = "0.1.0"

log = logging.getLogger("cohrt_sync_webhook")

#: What can be forwarded: the hooks this plugin implements.
KINDS = frozenset({"message", "join", "leave"})

#: 5 retries from 0.5 s doubling to 10 s, within 60 s; 408, 429 and 5xx are retried.
DEFAULT_RETRY = cohrt_sync.Retry(
    total=5, backoff_factor=0.5, backoff_max=10.0, budget=60.0,
    status_forcelist={408, 429, 500, 502, 503, 504},
)

_STOP = object()
# (url, body, delivery id, payload)
Delivery = Tuple[str, bytes, str, Dict[str, Any]]


class Webhook:
    """A plugin that POSTs each event to ``urls``, signed with ``secret``.

    Hooks only enqueue (``put_nowait``), so a channel's dispatcher is never
    held up. The worker thread (``cohrt-sync-webhook-…``) starts with the
    first event and stops when the last channel it served closes (or on
    :meth:`close`): it is given ``close_timeout`` seconds to drain, then what
    is left goes to the dead-letter file unsent.

    :param urls: one URL or several; each event goes to each.
    :param secret: the HMAC-SHA256 key shared with the receivers (never shown).
    :param kinds: which events to forward (default ``{"message"}``; see :data:`KINDS`).
    :param dead_letter: JSON-lines file for deliveries that failed (``None``:
        they are only logged).
    :param retry: the retry policy (default :data:`DEFAULT_RETRY`).
    :param timeout: ``(connect, read)`` seconds for each attempt.
    :param queue_size: events waiting at most; past it they are dead-lettered.
    :param close_timeout: seconds the worker gets to drain when stopped.
    :param session: a ``requests.Session`` to send with.
    :raises ValueError: no URL, a URL that is not http(s), an empty secret, an unknown kind.
    """

    def __init__(
        self,
        urls: Union[str, Sequence[str]],
        secret: Union[str, bytes],
        *,
        kinds: Collection[str] = ("message",),
        dead_letter: Optional[Union[str, os.PathLike[str]]] = None,
        retry: cohrt_sync.Retry = DEFAULT_RETRY,
        timeout: Tuple[float, float] = (3.05, 10.0),
        queue_size: int = 10_000,
        close_timeout: float = 2.0,
        session: Optional[requests.Session] = None,
    ) -> None:
        self.urls: List[str] = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls or not all(u.startswith(("http://", "https://")) for u in self.urls):
            raise ValueError(f"webhook URLs must be http:// or https:// URLs, not {self.urls!r}")
        if not secret:
            raise ValueError("a webhook needs a secret to sign its requests with")
        unknown = set(kinds) - KINDS
        if unknown:
            raise ValueError(f"unknown webhook kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        self._secret = secret
        self.kinds = frozenset(kinds)
        self.dead_letter = Path(dead_letter) if dead_letter is not None else None
        self.retry = retry
        self.timeout = timeout
        self.queue_size = queue_size
        self.close_timeout = close_timeout
        self._session = session if session is not None else requests.Session()
        self._lock = threading.Lock()
        self._dead_lock = threading.Lock()
        # Each worker has its own queue and abort event, so a worker started
        # while an old one drains never shares (or steals the stop of) its queue.
        self._worker: Optional[_Worker] = None
        self._channels: set[int] = set()

    def __repr__(self) -> str:
        return f"<Webhook {', '.join(self.urls)}>"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Webhook:
        """Build a :class:`Webhook` from ``COHRT_WEBHOOK_*`` variables.

        ``COHRT_WEBHOOK_URL`` (comma-separated) and ``COHRT_WEBHOOK_SECRET`` are
        required; ``COHRT_WEBHOOK_DEAD_LETTER`` and ``COHRT_WEBHOOK_KINDS``
        (comma-separated) are optional.

        :param env: the environment to read (default ``os.environ``).
        :raises ValueError: a missing or bad variable, named.
        """
        env = os.environ if env is None else env
        urls = [u.strip() for u in env.get("COHRT_WEBHOOK_URL", "").split(",") if u.strip()]
        secret = env.get("COHRT_WEBHOOK_SECRET", "")
        if not urls or not secret:
            raise ValueError(
                "set COHRT_WEBHOOK_URL and COHRT_WEBHOOK_SECRET, "
                "or pass cohrt_sync_webhook.Webhook(url, secret) in Client(plugins=[...])"
            )
        kinds = [k.strip() for k in env.get("COHRT_WEBHOOK_KINDS", "message").split(",")]
        return cls(urls, secret, kinds=[k for k in kinds if k],
                   dead_letter=env.get("COHRT_WEBHOOK_DEAD_LETTER") or None)

    # -- hooks: enqueue only ----------------------------------------------------

    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        """Count the channel as served (the worker stops when none is left)."""
        with self._lock:
            self._channels.add(id(channel))

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: cohrt_sync.Message) -> None:
        """Forward a publication."""
        self.send("message", channel, message=attrs.asdict(message))

    @cohrt_sync.hookimpl
    def on_join(self, channel: Any, user: cohrt_sync.User) -> None:
        """Forward a join."""
        self.send("join", channel, user={"id": user.id, "name": user.name})

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: cohrt_sync.User, last_seen: Optional[str]) -> None:
        """Forward a leave."""
        self.send("leave", channel, user={"id": user.id, "name": user.name}, last_seen=last_seen)

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        """Stop the worker (draining it) once the last channel served is closed."""
        with self._lock:
            self._channels.discard(id(channel))
            last = not self._channels
        if last:
            self.close(self.close_timeout)

    def send(self, kind: str, channel: Any, **fields: Any) -> None:
        """Queue one event for every URL; returns at once.

        :param kind: the event kind (only those in ``kinds`` are sent).
        :param channel: the channel (or its name).
        :param fields: more JSON fields.
        """
        if kind not in self.kinds:
            return
        name = channel if isinstance(channel, str) else channel.name
        delivery = uuid.uuid4().hex
        payload = {"id": delivery, "kind": kind, "channel": name, "ts": time.time(), **fields}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        with self._lock:
            if not isinstance(channel, str):
                self._channels.add(id(channel))
            if self._worker is None:
                self._worker = _Worker(self)
            worker = self._worker
            for url in self.urls:
                if worker.queue.qsize() >= self.queue_size:
                    self._dead((url, body, delivery, payload), "queue full", 0)
                    continue
                worker.queue.put_nowait((url, body, delivery, payload))

    # -- the worker -------------------------------------------------------------

    def _deliver(self, item: Delivery, abort: threading.Event) -> None:
        url, body, delivery, _ = item
        retry, start = self.retry, time.monotonic()
        while True:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
                "Cohrt-Delivery": delivery,
            }
            try:
                resp = self._session.post(url, data=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as e:
                error = f"{type(e).__name__}: {e}"
                retry = retry.increment(error=e)
            else:
                if 200 <= resp.status_code < 300:
                    return
                error = f"HTTP {resp.status_code}"
                if not retry.is_retryable_status(resp.status_code):
                    self._dead(item, error, retry.attempts + 1)
                    return
                retry = retry.increment(
                    status=resp.status_code,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            wait = retry.next_wait(time.monotonic() - start)
            if wait is None or abort.wait(wait):
                self._dead(item, error, retry.attempts)
                return
            log.debug("webhook %s to %s: %s, retrying in %.2fs", delivery, url, error, wait)

    def _dead(self, item: Delivery, error: str, attempts: int) -> None:
        url, _, delivery, payload = item
        log.error("webhook delivery %s to %s failed after %d attempt(s): %s",
                  delivery, url, attempts, error)
        if self.dead_letter is None:
            return
        line = json.dumps({"failed_at": time.time(), "url": url, "error": error,
                           "attempts": attempts, "payload": payload}, ensure_ascii=False)
        with self._dead_lock, open(self.dead_letter, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def redeliver(self) -> int:
        """Queue every dead letter again (the file is emptied first); returns how many.

        A delivery that fails again is dead-lettered again.
        """
        if self.dead_letter is None or not self.dead_letter.exists():
            return 0
        with self._dead_lock:
            taken = self.dead_letter.with_name(self.dead_letter.name + ".redelivering")
            os.replace(self.dead_letter, taken)
        lines = taken.read_text(encoding="utf-8").splitlines()
        for line in lines:
            payload = json.loads(line)["payload"]
            fields = {k: v for k, v in payload.items() if k not in ("id", "kind", "channel", "ts")}
            self.send(payload["kind"], payload["channel"], **fields)
        taken.unlink()
        return len(lines)

    @property
    def pending(self) -> int:
        """Deliveries queued and not yet attempted."""
        worker = self._worker
        return 0 if worker is None else worker.queue.qsize()

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop the worker: drain for most of ``timeout``, then dead-letter the rest.

        Idempotent; a later event starts a new worker.

        :param timeout: seconds (default ``close_timeout``).
        """
        timeout = self.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is None:
                return
            worker.queue.put(_STOP)
        thread = worker.thread
        if thread is threading.current_thread():
            return
        thread.join(timeout * 0.8)
        if thread.is_alive():
            worker.abort.set()  # interrupts a retry wait; the rest is dead-lettered unsent
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("thread %s still running after close(); an endpoint is slow to answer",
                        thread.name)


class _Worker:
    """One delivery thread, its queue and its abort event."""

    def __init__(self, hook: Webhook) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.abort = threading.Event()
        self.thread = threading.Thread(
            target=self.run, args=(hook,), name=f"cohrt-sync-webhook-{id(self) & 0xFFFF:04x}",
            daemon=True,
        )
        self.thread.start()

    def run(self, hook: Webhook) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            if self.abort.is_set():
                hook._dead(item, "not sent: the webhook was closed first", 0)
                continue
            try:
                hook._deliver(item, self.abort)
            except Exception as e:  # a bug here must not strand the queue
                log.exception("webhook delivery %s failed unexpectedly", item[2])
                hook._dead(item, f"{type(e).__name__}: {e}", 0)
