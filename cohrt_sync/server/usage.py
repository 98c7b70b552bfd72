"""Usage counts made durable before the action they count is answered.

The :class:`~.limits.Limiter` decides in memory; :class:`Usage` writes every
tenant whose counters it changed to the state database, group-committed: the
charges of one event-loop tick, and those made while the previous write was
on disk, share one transaction. An answer waits for its charge's write, so
after a crash (``kill -9``) every acknowledged action is counted, and an
action whose write was lost was never answered.

Publishes are the exception (:meth:`Usage.reserve_with_rows`): the tenant's
sequencer counts them in the tenant's database, in the transaction that
stores the batch's rows, so a stored row is always counted and a batch waits
for one disk write, not two.
"""

from __future__ import annotations

import asyncio
from typing import List, Optional, Tuple

from .errors import ApiError
from .limits import Limiter
from .state import StateStore, Tenant


class Usage:
    """Charges to the tier's caps, each durable before its action is answered.

    :param state: where tenants, and so their counters, are stored.
    :param limiter: the tier's limits; its ``dirty`` tenants are what to write.
    """

    def __init__(self, state: StateStore, limiter: Limiter) -> None:
        self.state = state
        self.limiter = limiter
        #: Resolved when the tenants dirty now are on disk.
        self._next: Optional[asyncio.Future[None]] = None
        #: Resolved when the write in flight is on disk.
        self._writing: Optional[asyncio.Future[None]] = None
        # Made on the server's loop, at the first charge.
        self._wakeup: Optional[asyncio.Event] = None
        self._writer: Optional[asyncio.Task[None]] = None

    def reserve(self, tenant: Tenant, what: str, n: int = 1) -> Optional[asyncio.Future[None]]:
        """Count ``n`` of ``what`` now (or raise the tier's refusal).

        :returns: a future resolved once the count is on disk, or None when the
            tier keeps no durable count of ``what``.
        """
        self._take(tenant, what, n)
        return self._schedule()

    def reserve_with_rows(self, tenant: Tenant, what: str) -> Tuple[str, ...]:
        """Count one ``what`` now (or raise the tier's refusal), durably written by the caller.

        :returns: the usage buckets the caller adds one to in the transaction
            of what it counts (``()`` when the tier keeps no count).
        """
        self._take(tenant, what, 1)
        return self.limiter.buckets(tenant, what)

    def _take(self, tenant: Tenant, what: str, n: int) -> None:
        try:
            self.limiter.take(tenant, what, n)
        except ApiError:
            # A refusal may have paused the tenant: that is written at once.
            self._schedule()
            raise

    async def charge(self, tenant: Tenant, what: str, n: int = 1) -> None:
        """:meth:`reserve`, and wait until the count is on disk."""
        pending = self.reserve(tenant, what, n)
        if pending is not None:
            # Shielded: a cancelled request must not fail the others sharing the write.
            await asyncio.shield(pending)

    def _schedule(self) -> Optional[asyncio.Future[None]]:
        if not self.limiter.dirty:
            return None
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
            self._writer = asyncio.ensure_future(self._write_loop(self._wakeup))
        self._wakeup.set()
        return self._next

    async def _write_loop(self, wakeup: asyncio.Event) -> None:
        while True:
            await wakeup.wait()
            wakeup.clear()
            done, self._next = self._next, None
            self._writing = done
            tenants: List[Tenant] = list(self.limiter.dirty.values())
            self.limiter.dirty.clear()
            try:
                if tenants:
                    await self.state.save_many(tenants)
            except Exception as e:  # the answers waiting for it fail; the loop goes on
                for t in tenants:  # and the next write tries these again
                    self.limiter.dirty.setdefault(t.id, t)
                if done is not None and not done.done():
                    done.set_exception(e)
                    done.exception()  # retrieved: a charge nobody awaits is no error
            else:
                if done is not None and not done.done():
                    done.set_result(None)

    async def close(self) -> None:
        """Finish the write in flight and write what is still pending, then stop."""
        pending = self._schedule() if self.limiter.dirty else self._next
        waits = [f for f in (self._writing, pending) if f is not None and not f.done()]
        if waits:
            await asyncio.wait(waits)
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        self._writer = self._wakeup = None


__all__ = ["Usage"]
