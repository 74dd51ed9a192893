"""The Lua scripts of the Redis backend's :class:`~node.store.ports.Blobs`,
:class:`~node.store.ports.OutboundQueue` and :class:`~node.store.ports.ReplayGuard` (the
key layout and the rules every script follows are in ``node.store.redis_scripts``)."""

from __future__ import annotations

from typing import Final

GRANT_BLOB: Final = """
if redis.call('HEXISTS', KEYS[1], 'd') == 1 then
  redis.call('HINCRBY', KEYS[3], 'n', -1)
  redis.call('HINCRBY', KEYS[3], 'bytes', -redis.call('HSTRLEN', KEYS[1], 'd'))
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 't', ARGV[1], 's', ARGV[2], 'e', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""

# The token hashes are compared through SHA-1 of each side, so the time the comparison
# takes says nothing about the stored value (the double-hash comparison).
PUT_BLOB: Final = """
local g = redis.call('HMGET', KEYS[1], 't', 's', 'e')
if (not g[1]) or redis.call('HEXISTS', KEYS[1], 'd') == 1 then return 0 end
if redis.sha1hex(g[1]) ~= redis.sha1hex(ARGV[1]) then return 0 end
if tonumber(g[2]) ~= #ARGV[2] or tonumber(g[3]) <= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('HINCRBY', KEYS[2], 'bytes', #ARGV[2])
return 1
"""


# The outbound federation queue of a domain D is a stream with one consumer group, "out"
# (DESIGN section 7): every replica is a consumer, named by its replica id.
#   obs:D    the stream: one entry {e = eid} per queued item, in queue order
#   obi:D    hash eid -> routing layer;  obx:D  zset eid by expiry;  obsid:D  eid -> entry id
#   obtx:D   hash entry id -> txn id .. eid (16 bytes), once the entry is in a transaction
#   obtxn:D  hash txn id -> its entry ids, space-separated
# An entry is read (XREADGROUP) into exactly one open transaction; it stays in the reading
# consumer's pending list until the transaction is done (XACK, XDEL). A consumer that goes
# quiet for longer than the lease loses its pending entries to the next replica that asks
# (XAUTOCLAIM), which sends the same transaction, under the same id, again.
# KEYS: obs, obi, obx, obsid, obdomains; ARGV: eid, layer, expires, domain.
OUTBOUND_PUT: Final = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'out', '0', 'MKSTREAM')
end
redis.call('HSET', KEYS[4], ARGV[1], redis.call('XADD', KEYS[1], '*', 'e', ARGV[1]))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[4])
return 1
"""

# KEYS: obs, obi, obx, obsid, obtx, obtxn; ARGV: txn, limit, max bytes, now, consumer,
# lease ms, then the txn ids the caller has in flight. Returns {txn, eid, expires, layer,
# eid, ...}: the first open transaction of this consumer, else one whose consumer has been
# quiet past the lease, else a new one of entries nobody has read, else just {txn}.
OUTBOUND_BATCH: Final = """
local obs, obi, obx, obsid, obtx, obtxn = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local me, lease = ARGV[5], tonumber(ARGV[6])
local function drop(sid)
  redis.call('XACK', obs, 'out', sid)
  redis.call('XDEL', obs, sid)
  redis.call('HDEL', obtx, sid)
end
for _, eid in ipairs(redis.call('ZRANGE', obx, '-inf', ARGV[4], 'BYSCORE')) do
  local sid = redis.call('HGET', obsid, eid)
  if sid then drop(sid) end
  redis.call('HDEL', obsid, eid)
  redis.call('HDEL', obi, eid)
  redis.call('ZREM', obx, eid)
end
if redis.call('EXISTS', obs) == 0 then return {ARGV[1]} end
local busy = {}
for i = 7, #ARGV do busy[ARGV[i]] = true end
local function items(txn)
  local list = redis.call('HGET', obtxn, txn)
  if not list then return nil end
  local out, sids = {txn}, {}
  for sid in string.gmatch(list, '%S+') do
    sids[#sids + 1] = sid
    local te = redis.call('HGET', obtx, sid)
    local layer = te and redis.call('HGET', obi, string.sub(te, -16))
    if layer then
      local eid = string.sub(te, -16)
      out[#out + 1] = eid
      out[#out + 1] = redis.call('ZSCORE', obx, eid)
      out[#out + 1] = layer
    end
  end
  if #out == 1 then
    for _, sid in ipairs(sids) do drop(sid) end
    redis.call('HDEL', obtxn, txn)
    return nil
  end
  -- ours now, and its lease starts again (XCLAIM resets the idle time)
  redis.call('XCLAIM', obs, 'out', me, 0, unpack(sids))
  return out
end
local function pick(sids)
  for _, sid in ipairs(sids) do
    local te = redis.call('HGET', obtx, sid)
    if te and not busy[string.sub(te, 1, -17)] then
      local out = items(string.sub(te, 1, -17))
      if out then return out end
    end
  end
  return nil
end
local mine = {}
for _, e in ipairs(redis.call('XPENDING', obs, 'out', '-', '+', 1000, me)) do
  mine[#mine + 1] = e[1]
end
local out = pick(mine)
if out then return out end
out = pick(redis.call('XAUTOCLAIM', obs, 'out', me, lease, '0-0', 'COUNT', 1000, 'JUSTID')[2])
if out then return out end
local last = '0-0'
local info = redis.call('XINFO', 'GROUPS', obs)[1]
for i = 1, #info, 2 do
  if info[i] == 'last-delivered-id' then last = info[i + 1] end
end
local take, size, maxb = 0, 0, tonumber(ARGV[3])
for _, e in ipairs(redis.call('XRANGE', obs, '(' .. last, '+', 'COUNT', tonumber(ARGV[2]))) do
  local n = redis.call('HSTRLEN', obi, e[2][2])
  if take > 0 and size + n > maxb then break end
  take, size = take + 1, size + n
end
if take == 0 then return {ARGV[1]} end
local read = redis.call('XREADGROUP', 'GROUP', 'out', me, 'COUNT', take, 'STREAMS', obs, '>')
local sids = {}
out = {ARGV[1]}
for _, e in ipairs(read[1][2]) do
  local eid = e[2][2]
  sids[#sids + 1] = e[1]
  redis.call('HSET', obtx, e[1], ARGV[1] .. eid)
  out[#out + 1] = eid
  out[#out + 1] = redis.call('ZSCORE', obx, eid)
  out[#out + 1] = redis.call('HGET', obi, eid)
end
redis.call('HSET', obtxn, ARGV[1], table.concat(sids, ' '))
return out
"""

# KEYS: obs, obi, obx, obsid, obtx, obtxn; ARGV: txn, eids to retry... The transaction's
# entries leave the stream; the items to retry are queued again at its end.
OUTBOUND_DONE: Final = """
local obs, obi, obx, obsid, obtx, obtxn = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local list = redis.call('HGET', obtxn, ARGV[1])
if not list then return 0 end
local retry, n = {}, 0
for i = 2, #ARGV do retry[ARGV[i]] = true end
for sid in string.gmatch(list, '%S+') do
  local te = redis.call('HGET', obtx, sid)
  redis.call('XACK', obs, 'out', sid)
  redis.call('XDEL', obs, sid)
  redis.call('HDEL', obtx, sid)
  if te then
    local eid = string.sub(te, -16)
    if redis.call('HEXISTS', obi, eid) == 1 then
      if retry[eid] then
        redis.call('HSET', obsid, eid, redis.call('XADD', obs, '*', 'e', eid))
      else
        redis.call('HDEL', obsid, eid)
        redis.call('HDEL', obi, eid)
        redis.call('ZREM', obx, eid)
        n = n + 1
      end
    end
  end
end
redis.call('HDEL', obtxn, ARGV[1])
return n
"""

OUTBOUND_DEPTHS: Final = """
local out = {}
for _, d in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('ZCOUNT', ARGV[1] .. 'obx:' .. d, '(' .. ARGV[2], '+inf')
  if n > 0 then
    out[#out + 1] = d
    out[#out + 1] = n
  end
end
return out
"""

RECORD_TXN: Final = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

REMEMBER_NONCE: Final = """
return redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
"""
