"""Open sockets per tenant across the cluster, as the socket caps count them.

Each node counts its own sockets (:attr:`SocketCounts.local`) and tells the
others every change over the bus; a node reads a tenant's count as its own
plus the last count each other node told. The routes use it as they use a
plain counter on one node (``counts[tenant] += 1``).
"""

from __future__ import annotations

import collections
from typing import Callable, Counter, Dict


class SocketCounts(Dict[str, int]):
    """``counts[tenant]``: the tenant's open sockets on every node.

    :param changed: called with (tenant, this node's new count) on each change.
    """

    def __init__(self, changed: Callable[[str, int], None]) -> None:
        super().__init__()
        self.local: Counter[str] = collections.Counter()
        self._remote: Dict[str, Dict[str, int]] = {}
        self._changed = changed

    def _others(self, tenant: str) -> int:
        return sum(self._remote.get(tenant, {}).values())

    def __getitem__(self, tenant: str) -> int:
        return self.local[tenant] + self._others(tenant)

    def __setitem__(self, tenant: str, total: int) -> None:
        # `counts[t] += 1` reads the cluster's count and writes it back plus
        # one: what changed is this node's share.
        mine = max(0, total - self._others(tenant))
        if mine:
            self.local[tenant] = mine
        else:
            self.local.pop(tenant, None)
        self._changed(tenant, mine)

    def get(self, tenant: str, default: int = 0) -> int:  # type: ignore[override]
        """The tenant's count (``default`` unused: a count is never missing)."""
        return self[tenant]

    def set_remote(self, tenant: str, node: str, count: int) -> None:
        """What another node said it holds."""
        if count:
            self._remote.setdefault(tenant, {})[node] = count
        else:
            self._remote.get(tenant, {}).pop(node, None)

    def forget_node(self, node: str) -> None:
        """A node is gone: its sockets count no more."""
        for per_node in self._remote.values():
            per_node.pop(node, None)


__all__ = ["SocketCounts"]
