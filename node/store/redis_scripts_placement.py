"""The Lua scripts of the Redis backend's :class:`~node.store.ports.MediaPlacement` (the key
layout and the rules every script follows are in ``node.store.redis_scripts``)::

    P media:REPLICA   hash a (the replica's media address), p (its port), e (expiry, Unix ms)
    P room:ROOM       hash h (the replica that holds the room), e (expiry, Unix ms)

As everywhere in this backend, the caller's clock decides expiry (``e`` against the
``now`` of each call). Unlike the other keys, these two also carry a Redis TTL, set at each
write to the caller's TTL plus ``BACKSTOP_GRACE_MS``: nothing sweeps them and their ids
are random per process and per room, so the TTL is what removes a killed replica's
announcement and a room nobody released. It only ever removes a key whose ``e`` has
passed, unless the caller's clock runs behind Redis' by more than the grace.
"""

from __future__ import annotations

from typing import Final

# KEYS: media:REPLICA; ARGV: address, port, expires, backstop TTL (ms).
ANNOUNCE_MEDIA: Final = """
redis.call('HSET', KEYS[1], 'a', ARGV[1], 'p', ARGV[2], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: media:REPLICA. 1 if an announcement was there.
WITHDRAW_MEDIA: Final = """
return redis.call('DEL', KEYS[1])
"""

# KEYS: room:ROOM; ARGV: replica, now, expires, backstop TTL (ms). The holder: another
# replica whose hold has not expired (nothing changes), else ARGV[1], which now holds it.
PLACE_ROOM: Final = """
local g = redis.call('HMGET', KEYS[1], 'h', 'e')
if g[1] and g[1] ~= ARGV[1] and tonumber(g[2]) > tonumber(ARGV[2]) then return g[1] end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return ARGV[1]
"""

# KEYS: room:ROOM; ARGV: replica, now, expires, backstop TTL (ms). 1 if ARGV[1] held the
# room (unexpired) and now holds it until ARGV[3]; else 0 and nothing changes.
RENEW_ROOM: Final = """
local g = redis.call('HMGET', KEYS[1], 'h', 'e')
if g[1] ~= ARGV[1] or tonumber(g[2]) <= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: room:ROOM; ARGV: replica. 1 if ARGV[1] held the room (now freed); else 0.
RELEASE_ROOM: Final = """
if redis.call('HGET', KEYS[1], 'h') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""
