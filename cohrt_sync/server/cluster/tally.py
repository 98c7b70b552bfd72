"""The counts a cluster's limits decide by, in Redis (:class:`~..limits.SharedCounts`).

Per-minute windows are sorted sets of timestamps; monthly and lifetime
counts are counters. Each check-and-count is one Lua script, so the
cluster's numbers are the tier's numbers, not N times them.

The limiter decides synchronously, inside the request it counts: these
calls use redis-py's blocking client with short timeouts, on the node's
event loop. Only tenants at a limited tier pay for them (one round trip per
limited request, about 0.1 ms on loopback); while Redis is known to be down
they answer 503 at once instead of waiting.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, Tuple

from ..backplane import BackplaneDown
from .link import Keys, RedisError

#: Seconds a limited request may wait for Redis before it is refused (503).
TALLY_TIMEOUT_S = 0.25
#: Counters outlive a month by this much (lifetime ones are kept for good).
MONTH_TTL_S = 40 * 24 * 3600

WINDOW = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
local n = tonumber(ARGV[3])
if redis.call('ZCARD', KEYS[1]) + n > tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, oldest[2] or tostring(now)}
end
for i = 1, n do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], 61000)
return {1, '0'}
"""

COUNT = """
local known = tonumber(ARGV[3])
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if cur < known then
  cur = known
  redis.call('SET', KEYS[1], known)
end
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
local n = tonumber(ARGV[1])
if cur + n > tonumber(ARGV[2]) then return {0, cur} end
return {1, redis.call('INCRBY', KEYS[1], n)}
"""


class RedisCounts:
    """Windows and counters in the cluster's Redis.

    :param url: the cluster's Redis.
    :param node: this node's id (receipts name it).
    :param up: whether the node's Redis link is up now.
    :param keys: the names of the cluster's Redis keys.
    """

    def __init__(self, url: str, node: str, up: Callable[[], bool], keys: Keys) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._client: Any = redis.Redis.from_url(
            url,
            socket_connect_timeout=TALLY_TIMEOUT_S,
            socket_timeout=TALLY_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._window = self._client.register_script(WINDOW)
        self._count = self._client.register_script(COUNT)
        self._node = node
        self._up = up
        self._keys = keys
        self._receipts = itertools.count(1)

    def _call(self, fn: Callable[[], Any]) -> Any:
        if not self._up():
            raise BackplaneDown("the cluster's Redis is unreachable; limits can't be counted")
        try:
            return fn()
        except (RedisError, OSError):
            raise BackplaneDown("the cluster's Redis did not answer; retry") from None

    def window(self, key: str, limit: int, n: int, now: float) -> Tuple[Optional[int], str]:
        """See :meth:`~..limits.SharedCounts.window`."""
        receipt = f"{self._node}:{next(self._receipts)}:{n}"
        now_ms = int(now * 1000)
        ok, oldest = self._call(
            lambda: self._window(keys=[self._keys.window(key)], args=[now_ms, limit, n, receipt])
        )
        if ok:
            return None, receipt
        return max(1, -(-(int(float(oldest)) + 60000 - now_ms) // 1000)), ""

    def give_back(self, key: str, receipt: str) -> None:
        """See :meth:`~..limits.SharedCounts.give_back`."""
        n = int(receipt.rpartition(":")[2])
        mine = [f"{receipt}:{i}" for i in range(1, n + 1)]
        self._call(lambda: self._client.zrem(self._keys.window(key), *mine))

    def count(self, key: str, n: int, cap: int, known: int) -> Optional[int]:
        """See :meth:`~..limits.SharedCounts.count`."""
        ttl = MONTH_TTL_S if "|month" in key else 0
        ok, total = self._call(
            lambda: self._count(keys=[self._keys.count(key)], args=[n, cap, known, ttl])
        )
        return int(total) if ok else None

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


__all__ = ["RedisCounts"]
