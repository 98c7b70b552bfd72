"""The Lua scripts a node runs in Redis: each check-and-change is one atomic step.

Redis runs a script alone, so what it reads cannot change before it writes:
that is what makes one owner per tenant, one ``join`` per user and one
``leave`` per user hold across nodes (docs/cluster.md).
"""

from __future__ import annotations

#: KEYS: lease, fence counter. ARGV: node, ttl ms.
#: The holder's "node|token", taking the lease with the next token if it is free
#: (and extending it if this node holds it already: the caller counts from now).
ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  if string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return cur
end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

#: KEYS: lease, fence counter. ARGV: held "node|token", node, lowest token, ttl ms.
#: Re-issue a held lease with a token above ``lowest`` (Redis lost its counter).
BUMP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[2] .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[4])
return value
"""

#: KEYS: lease. ARGV: held "node|token", ttl ms. 1 if still held (and extended).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: KEYS: lease. ARGV: held "node|token". Let the lease go (a clean shutdown).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS: lease, broadcast mark, bus. ARGV: held "node|token", newest id (0: none), message.
#: Publish a sequenced batch only while the lease is held; the mark never goes back.
BROADCAST = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local id = tonumber(ARGV[2])
if id > 0 and id > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('PUBLISH', KEYS[3], ARGV[3])
return 1
"""

#: KEYS: roster hash, the user's nodes, the node's entries, bus.
#: ARGV: node, user, name (JSON), entry, join message.
#: Returns {1 if the user is new to the cluster, roster as a flat list}.
JOIN = """
local added = redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
local first = added == 1 and redis.call('SCARD', KEYS[2]) == 1
if first then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PUBLISH', KEYS[4], ARGV[5])
else
  redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
end
return {first and 1 or 0, redis.call('HGETALL', KEYS[1])}
"""

#: KEYS: roster hash, the user's nodes, the node's entries, bus.
#: ARGV: node, user, entry, leave message. 1 if the user left the cluster.
LEAVE = """
local removed = redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[3])
if removed == 1 and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('PUBLISH', KEYS[4], ARGV[4])
  return 1
end
return 0
"""

#: KEYS: nodes zset. ARGV: node. Mark the node alive at Redis's clock; returns
#: {1 if it was known (not reaped, Redis kept its data), now ms}.
HEARTBEAT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return {known and 1 or 0, now}
"""

__all__ = ["ACQUIRE", "BROADCAST", "BUMP", "HEARTBEAT", "JOIN", "LEAVE", "RELEASE", "RENEW"]
