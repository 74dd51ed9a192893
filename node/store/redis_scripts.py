"""The Lua scripts of :class:`~node.store.redis.RedisStore`, one per atomic step.

Redis runs a script without interleaving any other command, so each script is one
transaction (the Redis documentation, "Scripting with Lua": "Redis guarantees the
script's atomic execution"). Scripts receive the keys they touch in ``KEYS`` except
:data:`SWEEP`, which derives per-mailbox and per-blob keys from the prefix; that is
fine on one primary (with Sentinel) and the reason this backend does not claim Redis
Cluster support.

Key layout (``P`` is the store's prefix, e.g. ``sealrelay:``; ``MB`` a mailbox id, ``DEV``
``address`` + NUL + device number, ``M`` the one-byte length of ``MB`` + ``MB`` + ``eid``):

    P seq                    the last envelope seq: INCR, but at least the server's clock
                             in microseconds, so that seqs keep increasing even when a
                             failover or a restart lost the counter's last increments
    P inv / P inv:exp        hash code_hash -> account name / zset code_hash by expiry
    P dev:ADDRESS            hash device number -> packed DeviceRecord
    P mbox                   hash mailbox -> packed DeviceRecord
    P addrs                  set of addresses with a device
    P verifier / P intro     hashes address -> token verifier / "1" or "0"
    P pk:DEV                 hash of the standing prekeys
    P otk:DEV / P kotk:DEV   zsets of one-time DH / KEM keys, score 0, member = 8-byte
                             big-endian id + key, so ZPOPMIN takes the lowest id
    P seen:DEV               set of every one-time id ever stored ("d"/"k" + 8-byte id)
    P q:MB                   zset eid by seq (the mailbox, in order)
    P b:MB                   hash eid -> packed (ts, expires, origin, sender, body)
    P bref:MB                hash eid -> shared body id (fan-out records; body b"")
    P sb:ID                  hash d (a fan-out body), n (unacked records referring to it)
    P sbodies                set of shared body ids held
    P env:exp                zset M by envelope expiry (stored, unacked)
    P tomb:exp               zset M by expiry (acked envelopes: de-duplication tombstones)
    P blob:ID                hash t (token hash), s (size), e (expiry), d (the bytes)
    P blobs:exp              zset blob id by expiry
    P blobstat               hash n (uploaded blobs), bytes (their total size)
    P obdomains              set of domains with queued outbound items
    P obs:DOMAIN             stream, consumer group "out": the federation outbound queue
                             (one entry per item; see OUTBOUND_PUT below)
    P obi:DOMAIN             hash eid -> routing layer
    P obx:DOMAIN             zset eid by expiry
    P obsid:DOMAIN           hash eid -> its stream entry id
    P obtx:DOMAIN            hash entry id -> txn id .. eid (entries read into a transaction)
    P obtxn:DOMAIN           hash txn id -> its entry ids (the open transactions)
    P txn / P txn:exp        hash O -> remembered result / zset O by expiry, where O is
                             the two-byte length of the origin + origin + txn id
    P nonce                  zset O (origin + nonce) by expiry
    P rl:salt                the salt of the rate-limit key hashes
    P rl:NAME:H:W            hash replica id -> tokens limiter NAME spent for key hash H in
                             window W (``node.clusterlimits``; gone 10 s after its window)
    P push                   pub/sub channel: ENQUEUE publishes each stored envelope's
                             (publisher, mailbox, seq) there, for ``node.cluster``

Expiry is the caller's clock (the ``now`` arguments of the Store Protocol), never a Redis
TTL: :meth:`Store.sweep` must count what it deletes, and the node's clock is the one
that decides (``expires <= now`` has expired).
"""

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

REGISTER: Final = """
local name = redis.call('HGET', KEYS[1], ARGV[1])
if (not name) or name ~= ARGV[2] then return 0 end
local exp = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
if (not exp) or exp <= tonumber(ARGV[3]) then return 0 end
if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[6])
redis.call('SADD', KEYS[5], ARGV[7])
return 1
"""

ADD_INVITE: Final = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

PUT_PREKEYS: Final = """
redis.call('HSET', KEYS[1], 'identity', ARGV[1], 'spk', ARGV[2], 'lr', ARGV[3],
           'sealed', ARGV[4])
local i = 5
for _, kind in ipairs({{'d', KEYS[2]}, {'k', KEYS[3]}}) do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    local id = ARGV[i]
    if redis.call('SADD', KEYS[4], kind[1] .. id) == 1 then
      redis.call('ZADD', kind[2], 0, id .. ARGV[i + 1])
    end
    i = i + 2
  end
end
return 1
"""

TAKE_BUNDLE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local s = redis.call('HMGET', KEYS[1], 'identity', 'spk', 'sealed', 'lr')
local o = redis.call('ZPOPMIN', KEYS[2])
local k = redis.call('ZPOPMIN', KEYS[3])
return {s[1], s[2], s[3], s[4], o[1] or false, k[1] or false}
"""

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

SWEEP: Final = """
local p, now, chunk = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function expired(key)
  return redis.call('ZRANGE', key, '-inf', now, 'BYSCORE', 'LIMIT', 0, chunk)
end
local envelopes = expired(KEYS[1])
for _, m in ipairs(envelopes) do
  local len = string.byte(m, 1)
  local mb, eid = string.sub(m, 2, len + 1), string.sub(m, len + 2)
  redis.call('ZREM', p .. 'q:' .. mb, eid)
  redis.call('HDEL', p .. 'b:' .. mb, eid)
  redis.call('ZREM', KEYS[1], m)
  local ref = redis.call('HGET', p .. 'bref:' .. mb, eid)
  if ref then
    redis.call('HDEL', p .. 'bref:' .. mb, eid)
    if redis.call('HINCRBY', p .. 'sb:' .. ref, 'n', -1) <= 0 then
      redis.call('DEL', p .. 'sb:' .. ref)
      redis.call('SREM', KEYS[11], ref)
    end
  end
end
local tombs = expired(KEYS[2])
for _, m in ipairs(tombs) do redis.call('ZREM', KEYS[2], m) end
local more = #envelopes == chunk or #tombs == chunk
local outbound = 0
for _, d in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local x = p .. 'obx:' .. d
  local ids = expired(x)
  more = more or #ids == chunk
  local obs, obsid, obtx = p .. 'obs:' .. d, p .. 'obsid:' .. d, p .. 'obtx:' .. d
  for _, id in ipairs(ids) do
    local sid = redis.call('HGET', obsid, id)
    if sid then
      redis.call('XACK', obs, 'out', sid)
      redis.call('XDEL', obs, sid)
      redis.call('HDEL', obtx, sid)
    end
    redis.call('HDEL', obsid, id)
    redis.call('HDEL', p .. 'obi:' .. d, id)
    redis.call('ZREM', x, id)
  end
  outbound = outbound + #ids
  if redis.call('ZCARD', x) == 0 then
    redis.call('SREM', KEYS[7], d)
    redis.call('DEL', obs, obsid, obtx, p .. 'obtxn:' .. d)
  end
end
local txns = expired(KEYS[8])
for _, m in ipairs(txns) do
  redis.call('HDEL', KEYS[9], m)
  redis.call('ZREM', KEYS[8], m)
end
local nonces = expired(KEYS[10])
for _, m in ipairs(nonces) do redis.call('ZREM', KEYS[10], m) end
local blobs = expired(KEYS[3])
for _, id in ipairs(blobs) do
  local key = p .. 'blob:' .. id
  if redis.call('HEXISTS', key, 'd') == 1 then
    redis.call('HINCRBY', KEYS[4], 'n', -1)
    redis.call('HINCRBY', KEYS[4], 'bytes', -redis.call('HSTRLEN', key, 'd'))
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[3], id)
end
local invites = expired(KEYS[5])
for _, code in ipairs(invites) do
  redis.call('HDEL', KEYS[6], code)
  redis.call('ZREM', KEYS[5], code)
end
more = more or #blobs == chunk or #invites == chunk or #txns == chunk or #nonces == chunk
return {#envelopes, #blobs, #tombs, #invites, outbound, more and 1 or 0}
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

STATS: Final = """
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),
        tonumber(redis.call('HGET', KEYS[3], 'n') or 0),
        tonumber(redis.call('HGET', KEYS[3], 'bytes') or 0),
        redis.call('SCARD', KEYS[4]), redis.call('HLEN', KEYS[5]), redis.call('ZCARD', KEYS[6]),
        redis.call('SCARD', KEYS[7])}
"""

# Shared rate limits (node.clusterlimits). KEYS: per entry, the hash of the previous and
# of the current window; ARGV: replica id, window TTL in ms, then the amount this replica
# spent per entry. Adds each amount to the current window under this replica's field and
# returns, per entry, what the *other* replicas spent in the previous and current window
# (as strings: Lua numbers are truncated to integers in replies).
SHARE_RATES: Final = """
local me, ttl = ARGV[1], tonumber(ARGV[2])
local function others(key)
  local sum, flat = 0, redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    if flat[i] ~= me then sum = sum + tonumber(flat[i + 1]) end
  end
  return sum
end
local out = {}
for i = 1, #KEYS, 2 do
  local spent = tonumber(ARGV[2 + (i + 1) / 2])
  if spent > 0 then
    redis.call('HINCRBYFLOAT', KEYS[i + 1], me, spent)
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
  end
  out[#out + 1] = tostring(others(KEYS[i]))
  out[#out + 1] = tostring(others(KEYS[i + 1]))
end
return out
"""

# KEYS: the salt key; ARGV: a fresh random salt. The salt every replica uses (the first
# one written wins).
RATE_SALT: Final = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""

ALL: Final = {
    "register": REGISTER,
    "add_invite": ADD_INVITE,
    "put_prekeys": PUT_PREKEYS,
    "take_bundle": TAKE_BUNDLE,
    "enqueue": ENQUEUE,
    "enqueue_shared": ENQUEUE_SHARED,
    "pending": PENDING,
    "count_pending": COUNT_PENDING,
    "ack": ACK,
    "grant_blob": GRANT_BLOB,
    "put_blob": PUT_BLOB,
    "sweep": SWEEP,
    "outbound_put": OUTBOUND_PUT,
    "outbound_batch": OUTBOUND_BATCH,
    "outbound_done": OUTBOUND_DONE,
    "outbound_depths": OUTBOUND_DEPTHS,
    "record_txn": RECORD_TXN,
    "remember_nonce": REMEMBER_NONCE,
    "stats": STATS,
    "share_rates": SHARE_RATES,
    "rate_salt": RATE_SALT,
}
