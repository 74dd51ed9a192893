"""The Lua scripts of the Redis backend's :class:`~node.store.ports.CallLegs` (the key
layout and the rules every script follows are in ``node.store.redis_scripts``)::

    P leg:ID      hash r (the replica that holds the leg), h (SHA-256 of its secret),
                  e (expiry, Unix ms), c ("1" once a bridge claimed it)
    P legs:exp    zset leg id by expiry
"""

from __future__ import annotations

from typing import Final

# KEYS: leg, legs:exp; ARGV: replica, secret hash, expires, claimed ("0"/"1"), leg id.
ADD_LEG: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'h', ARGV[2], 'e', ARGV[3], 'c', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
return 1
"""

# KEYS: leg; ARGV: now. The record before the claim ({r, h, e, c}), or nil if unknown or
# expired; sets c to "1".
CLAIM_LEG: Final = """
local g = redis.call('HMGET', KEYS[1], 'r', 'h', 'e', 'c')
if (not g[1]) or tonumber(g[3]) <= tonumber(ARGV[1]) then return false end
if g[4] ~= '1' then redis.call('HSET', KEYS[1], 'c', '1') end
return g
"""

# KEYS: leg; ARGV: now. 1 if the unexpired leg was claimed and now is not (c back to "0"),
# else 0 (unknown, expired or not claimed: nothing changes).
RELEASE_LEG: Final = """
local g = redis.call('HMGET', KEYS[1], 'e', 'c')
if (not g[1]) or tonumber(g[1]) <= tonumber(ARGV[1]) or g[2] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'c', '0')
return 1
"""

# KEYS: leg, legs:exp; ARGV: replica, expires, now, leg id.
RENEW_LEG: Final = """
local e = redis.call('HGET', KEYS[1], 'e')
if (not e) or tonumber(e) <= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'e', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1
"""

# KEYS: leg, legs:exp; ARGV: leg id.
DELETE_LEG: Final = """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS: legs:exp; ARGV: prefix, now, chunk. Deletes up to chunk expired legs (their hash
# keys derived from the prefix, as SWEEP does); how many.
SWEEP_LEGS: Final = """
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0,
                       tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. 'leg:' .. id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""
