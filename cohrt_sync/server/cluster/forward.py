"""A non-owner's side of node-to-node HTTP: publishes and database calls sent to the owner.

Publishes of a tenant go to its owner in the order this node's sequencer
took them, one request at a time, so the owner sequences them in that
order. A socket's ack or error comes back with the owner's broadcast when
it is there first (so the ack comes before the socket's own copy of the
message, as on one node), else from the answer; whichever comes first
settles it and the other is ignored.

:class:`RemoteTenantDB` stands in for a tenant database the owner holds:
``db.call(db.history, ...)`` becomes a request for the owner to run it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import sqlite3
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

import aiohttp

from .. import directsql, sqlpolicy
from ..backplane import BackplaneDown
from ..pending import Pending, PersistError
from ..tenantdb import SqlLimits

#: The header that carries the cluster's shared secret.
SECRET_HEADER = "X-Cohrt-Cluster"
#: How long a forwarded request may take.
FORWARD_TIMEOUT_S = 4.0
#: How long a forwarded call keeps looking for the tenant's owner (a lease's
#: lifetime and then some: a dead owner's lease runs out meanwhile).
RELOCATE_WITHIN_S = 6.0
#: Bytes of message data in one forwarded request (the owner's body limit is 1 MiB).
MAX_FORWARD_BYTES = 512 * 1024
#: Database calls a non-owner may ask the owner to run.
REMOTE_CALLS = frozenset(
    {"history", "execute_sql", "find_idempotent", "usage_counts", "ensure_schema", "drop_realtime"}
)
#: Exceptions that cross the wire by name, as the routes tell them apart.
_ERRORS: Dict[str, Callable[[str], Exception]] = {
    "SqlRefused": sqlpolicy.SqlRefused,
    "SqlOutOfTime": directsql.SqlOutOfTime,
    "SqlTooLarge": directsql.SqlTooLarge,
    "DatabaseFull": directsql.DatabaseFull,
    "ValueError": ValueError,
    "OverflowError": OverflowError,
}


class OwnerGone(Exception):
    """The owner could not be reached: the request never arrived (connection refused)."""


class OwnerMoved(Exception):
    """The node asked is no longer the owner (409)."""


def error_name(e: BaseException) -> str:
    """How a database call's exception is named on the wire."""
    for name, kind in _ERRORS.items():
        if isinstance(kind, type) and isinstance(e, kind):
            return name
    return "sqlite3.Error"


def raise_named(name: str, message: str) -> None:
    """Raise the exception a name from :func:`error_name` stands for."""
    raise _ERRORS.get(name, sqlite3.Error)(message)


class Forwarder:
    """HTTP to owner nodes, authenticated by the cluster's shared secret.

    :param node: this node's id.
    :param secret: the cluster's shared secret.
    """

    def __init__(self, node: str, secret: str) -> None:
        self.node = node
        self._headers = {SECRET_HEADER: secret}
        self._session: Optional[aiohttp.ClientSession] = None
        self._refs = itertools.count(1)
        #: Forwarded socket publishes not yet answered, by reference.
        self.awaiting: Dict[int, Pending] = {}
        self._ref_of: Dict[int, int] = {}

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client (made on the event loop, at first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Shorter than a client's own timeout: a frozen owner (its
                # lease runs out in 3 s) is answered for, then asked no more.
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S, connect=2)
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """POST ``body`` to another node's ``url``; its JSON answer.

        :raises OwnerGone: it refused the connection (nothing reached it).
        :raises OwnerMoved: it no longer owns the tenant.
        :raises BackplaneDown: anything else (it may or may not have acted).
        """
        if not url.startswith("http"):
            raise OwnerGone("the owner has not said where it serves yet")
        try:
            async with self.session().post(url, json=body, headers=self._headers) as resp:
                if resp.status == 409:
                    raise OwnerMoved()
                answer = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(answer, dict):
                    message = _message(answer) or f"HTTP {resp.status}"
                    raise BackplaneDown(f"the tenant's owner node failed: {message}")
                return answer
        except aiohttp.ClientConnectorError as e:
            raise OwnerGone(str(e)) from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise BackplaneDown(
                f"the tenant's owner node did not answer ({type(e).__name__}); retry"
            ) from None

    async def forward(
        self,
        tenant: str,
        batch: List[Pending],
        locate: Callable[[], Awaitable[Optional[str]]],
        lost: Callable[[], None],
        finish: Callable[[Pending], None],
    ) -> List[Pending]:
        """Send ``batch`` to the tenant's owner in order, settling each publish.

        :param locate: the owner's base URL, or None once this node owns the tenant.
        :param lost: the owner did not answer as owner (look it up again).
        :param finish: answers a publish (the hub's).
        :returns: the publishes left for this node to sequence (it became the owner).
        """
        deadline = time.monotonic() + RELOCATE_WITHIN_S
        chunks = self.encode(batch)
        for i, (items, pendings) in enumerate(chunks):
            while True:
                try:
                    url = await locate()
                    if url is None:
                        rest = [p for _, ps in chunks[i:] for p in ps]
                        for p in rest:
                            self.forget(p)
                        return rest
                    body = {"tenant": tenant, "node": self.node, "items": items}
                    answer = await self.post(url + "/_cluster/publish", body)
                except (OwnerGone, OwnerMoved) as e:
                    lost()
                    if time.monotonic() < deadline:
                        if isinstance(e, OwnerGone):
                            await asyncio.sleep(0.2)
                        continue
                    self.fail(pendings, "the tenant's owner node is gone", finish)
                    break
                except BackplaneDown as e:
                    lost()
                    self.fail(pendings, e.message, finish)
                    break
                for p, (ok, payload) in zip(pendings, answer.get("results", [])):
                    self.settle(p, bool(ok), payload, finish)
                break
        return []

    def fail(self, pendings: List[Pending], why: str, finish: Callable[[Pending], None]) -> None:
        """Answer each of ``pendings`` with a refusal to retry (503 over HTTP)."""
        for p in pendings:
            self.settle(p, False, {"message": f"Failed to publish: {why}", "code": 503}, finish)

    def encode(self, batch: Sequence[Pending]) -> List[Tuple[List[Dict[str, Any]], List[Pending]]]:
        """The batch as items for ``/_cluster/publish``, in chunks under the body limit,
        each with its publishes."""
        chunks: List[Tuple[List[Dict[str, Any]], List[Pending]]] = [([], [])]
        size = 0
        for p in batch:
            if p.sender is not None:
                ref = next(self._refs)
                self.awaiting[ref] = p
                self._ref_of[id(p)] = ref
                reply: Optional[List[Any]] = [self.node, ref]
            else:
                reply = list(p.reply_to) if p.reply_to is not None else None
            item = {
                "c": p.channel,
                "e": p.event,
                "d": p.data_json,
                "p": p.persist,
                "t": p.created_at_ms,
                "k": p.idempotency_key,
                "n": list(p.counts),
                "r": reply,
                "x": p.error,
            }
            size += len(p.data_json) + len(p.channel) + 200
            if size > MAX_FORWARD_BYTES and chunks[-1][0]:
                chunks.append(([], []))
                size = len(p.data_json)
            chunks[-1][0].append(item)
            chunks[-1][1].append(p)
        return chunks

    def settle(self, p: Pending, ok: bool, answer: Any, finish: Callable[[Pending], None]) -> None:
        """Answer ``p`` from the owner's verdict, unless its broadcast already did."""
        if p.sender is not None:
            if id(p) not in self._ref_of:
                return
            self.forget(p)
        if ok:
            p.ack = answer.get("ack") if isinstance(answer, dict) else None
            p.frame = None
            p.id = answer.get("id") if isinstance(answer, dict) else None
            if p.future is not None and not p.future.done():
                result = dict(answer.get("result") or {})
                p.future.set_result(result)
                p.future = None
        else:
            message = str(answer.get("message", "failed")) if isinstance(answer, dict) else "failed"
            p.error = message
            if p.future is not None and not p.future.done():
                code = answer.get("code") if isinstance(answer, dict) else None
                p.future.set_exception(
                    BackplaneDown(message) if code == 503 else PersistError(message)
                )
                p.future = None
        finish(p)

    def forget(self, p: Pending) -> None:
        """Stop waiting for ``p``'s answer."""
        ref = self._ref_of.pop(id(p), None)
        if ref is not None:
            self.awaiting.pop(ref, None)

    def claim(self, ref: int) -> Optional[Pending]:
        """The socket publish forwarded as ``ref``, if it still waits for its answer."""
        p = self.awaiting.pop(ref, None)
        if p is not None:
            self._ref_of.pop(id(p), None)
        return p


class RemoteTenantDB:
    """A tenant database held by another node, used as a local one is.

    :param forwarder: the HTTP client.
    :param url: the owner's ``/_cluster/db``.
    :param tenant: the tenant id.
    :param limits: this server's SQL limits (the owner's are the same).
    :param relocate: asked again when the owner is gone or moved: the new
        owner's ``/_cluster/db``, or the local database if this node took over.
    """

    def __init__(
        self,
        forwarder: Forwarder,
        url: str,
        tenant: str,
        limits: SqlLimits,
        relocate: Callable[[], Awaitable[Any]],
    ) -> None:
        self._forwarder = forwarder
        self._url = url
        self._tenant = tenant
        self._relocate = relocate
        self.limits = limits

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Have the owner run the database method ``fn`` with ``args``."""
        op = getattr(fn, "__name__", "")
        if op not in REMOTE_CALLS:
            raise BackplaneDown(f"{op} can only run on the tenant's owner node")
        deadline = time.monotonic() + RELOCATE_WITHIN_S
        while True:
            try:
                answer = await self._forwarder.post(
                    self._url, {"tenant": self._tenant, "op": op, "args": list(args)}
                )
                break
            except (OwnerGone, OwnerMoved) as e:
                if time.monotonic() > deadline:
                    raise BackplaneDown("the tenant's owner node is gone; retry") from None
                if isinstance(e, OwnerGone):
                    await asyncio.sleep(0.2)
                try:
                    target = await self._relocate()
                except OwnerGone:
                    continue
                if not isinstance(target, str):
                    return await target.call(getattr(target, op), *args)
                self._url = target
        if "error" in answer:
            raise_named(str(answer["error"]), str(answer.get("message", "")))
        if "bytes" in answer:
            return base64.b64decode(answer["bytes"])
        return answer.get("ok")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # ``db.call(db.history, ...)``: a stand-in named like the owner's method.
        if name not in REMOTE_CALLS:
            raise AttributeError(name)

        def remote(*args: Any) -> Any:  # pragma: no cover - passed to call(), never run
            raise NotImplementedError(f"{name} runs on the tenant's owner node")

        remote.__name__ = name
        return remote


def _message(answer: Any) -> Optional[str]:
    if isinstance(answer, dict):
        err = answer.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
    return None


__all__ = [
    "REMOTE_CALLS",
    "SECRET_HEADER",
    "Forwarder",
    "OwnerGone",
    "OwnerMoved",
    "RemoteTenantDB",
    "error_name",
    "raise_named",
]
