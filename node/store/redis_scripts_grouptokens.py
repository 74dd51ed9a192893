"""The Lua scripts of the Redis backend's :class:`~node.store.ports.GroupTokens` (the key
layout and the rules every script follows are in ``node.store.redis_scripts``)::

    P gtok:ADDRESS   set of the address's live group token verifiers
"""

from __future__ import annotations

from typing import Final

# KEYS: gtok:ADDRESS; ARGV: verifier, the verifier it replaces ("" for none), limit.
# 1 and the set changed, or 0 (nothing changes) if the set would exceed the limit.
PUT_GROUP_VERIFIER: Final = """
local count = redis.call('SCARD', KEYS[1])
local adds = 1 - redis.call('SISMEMBER', KEYS[1], ARGV[1])
local drops = 0
if ARGV[2] ~= '' and ARGV[2] ~= ARGV[1] then
  drops = redis.call('SISMEMBER', KEYS[1], ARGV[2])
end
if count + adds - drops > tonumber(ARGV[3]) then return 0 end
if drops == 1 then redis.call('SREM', KEYS[1], ARGV[2]) end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

# KEYS: gtok:ADDRESS; ARGV: verifier. 1 if it was live.
REVOKE_GROUP_VERIFIER: Final = """
return redis.call('SREM', KEYS[1], ARGV[1])
"""
