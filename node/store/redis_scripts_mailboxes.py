"""The Lua scripts of the Redis backend's :class:`~node.store.ports.Mailboxes` (the key
layout and the rules every script follows are in ``node.store.redis_scripts``)."""

from __future__ import annotations

from typing import Final

# The next envelope seq (see ``P seq`` above), as a number and as the decimal text that
# the mailbox zset and the push notice carry. Both enqueue scripts begin with it.
_NEXT_SEQ: Final = """
local function next_seq(key)
  local seq = redis.call('INCR', key)
  local t = redis.call('TIME')
  local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if seq < floor then
    seq = floor
    redis.call('SET', key, string.format('%.0f', seq))
  end
  return seq, string.format('%.0f', seq)
end
"""

# Fan-out: one body for many records. ARGV: prefix, body id, body, push channel, notice
# prefix (b"E" + replica id), then per record: mailbox, eid, expires, packed record.
# KEYS: seq, tomb:exp, env:exp, sbodies. Returns {stored, seq, stored, seq, ...}.
ENQUEUE_SHARED: Final = (
    _NEXT_SEQ
    + """
local p, id, out, refs = ARGV[1], ARGV[2], {}, 0
for i = 6, #ARGV, 4 do
  local mb, eid, exp, packed = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local m = string.char(#mb) .. mb .. eid
  local old = redis.call('ZSCORE', p .. 'q:' .. mb, eid)
  if old then
    out[#out + 1] = 0
    out[#out + 1] = tonumber(old)
  elseif redis.call('ZSCORE', KEYS[2], m) then
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    local seq, text = next_seq(KEYS[1])
    redis.call('ZADD', p .. 'q:' .. mb, text, eid)
    redis.call('HSET', p .. 'b:' .. mb, eid, packed)
    redis.call('HSET', p .. 'bref:' .. mb, eid, id)
    redis.call('ZADD', KEYS[3], exp, m)
    redis.call('PUBLISH', ARGV[4], ARGV[5] .. string.char(#mb) .. mb .. text)
    refs = refs + 1
    out[#out + 1] = 1
    out[#out + 1] = seq
  end
end
if refs > 0 then
  redis.call('HSET', p .. 'sb:' .. id, 'd', ARGV[3], 'n', refs)
  redis.call('SADD', KEYS[4], id)
end
return out
"""
)

ENQUEUE: Final = (
    _NEXT_SEQ
    + """
local old = redis.call('ZSCORE', KEYS[2], ARGV[1])
if old then return {0, tonumber(old)} end
if redis.call('ZSCORE', KEYS[5], ARGV[2]) then return {0, 0} end
local seq, text = next_seq(KEYS[1])
redis.call('ZADD', KEYS[2], text, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. text)
return {1, seq}
"""
)

PENDING: Final = """
local limit, now, out, offset = tonumber(ARGV[2]), tonumber(ARGV[3]), {}, 0
while #out < 4 * limit do
  local ids = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE',
                         'LIMIT', offset, limit, 'WITHSCORES')
  if #ids == 0 then break end
  for j = 1, #ids, 2 do
    local exp = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[4] .. ids[j]))
    if exp and exp > now and #out < 4 * limit then
      out[#out + 1] = ids[j]
      out[#out + 1] = ids[j + 1]
      out[#out + 1] = redis.call('HGET', KEYS[2], ids[j])
      local ref = redis.call('HGET', KEYS[4], ids[j])
      out[#out + 1] = ref and redis.call('HGET', ARGV[5] .. 'sb:' .. ref, 'd') or false
    end
  end
  offset = offset + limit
end
return out
"""

COUNT_PENDING: Final = """
local now, n = tonumber(ARGV[2]), 0
for _, eid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local exp = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1] .. eid))
  if exp and exp > now then n = n + 1 end
end
return n
"""

ACK: Final = """
local n = 0
for i = 3, #ARGV do
  local eid = ARGV[i]
  if redis.call('HDEL', KEYS[2], eid) == 1 then
    local m = ARGV[1] .. eid
    local exp = redis.call('ZSCORE', KEYS[3], m)
    redis.call('ZREM', KEYS[1], eid)
    redis.call('ZREM', KEYS[3], m)
    redis.call('ZADD', KEYS[4], exp, m)
    local ref = redis.call('HGET', KEYS[5], eid)
    if ref then
      redis.call('HDEL', KEYS[5], eid)
      local body = ARGV[2] .. 'sb:' .. ref
      if redis.call('HINCRBY', body, 'n', -1) <= 0 then
        redis.call('DEL', body)
        redis.call('SREM', KEYS[6], ref)
      end
    end
    n = n + 1
  end
end
return n
"""
