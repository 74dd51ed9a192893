"""The Lua scripts of :class:`~node.store.redis.RedisStore`, one per atomic step: the
accounts, prekeys and maintenance scripts here, the others by port in
``redis_scripts_mailboxes``, ``redis_scripts_federation``, ``redis_scripts_calls``,
``redis_scripts_grouptokens`` and ``redis_scripts_placement``;
:data:`ALL` names them all.

Redis runs a script without interleaving any other command, so each script is one
transaction (the Redis documentation, "Scripting with Lua": "Redis guarantees the
script's atomic execution"). Scripts receive the keys they touch in ``KEYS`` except
:data:`SWEEP` and ``SWEEP_LEGS``, which derive per-mailbox, per-blob and per-leg keys
from the prefix; that is
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
    P leg:ID / P legs:exp    call legs: hash r, h, e, c / zset leg id by expiry
                             (``redis_scripts_calls``)
    P gtok:ADDRESS           set of the address's live group token verifiers
                             (``redis_scripts_grouptokens``)
    P media:REPLICA          hash a, p, e: where a replica's media listener answers
    P room:ROOM              hash h, e: the replica that holds a meeting room
                             (both ``redis_scripts_placement``; with a backstop TTL)
    P push                   pub/sub channel: ENQUEUE publishes each stored envelope's
                             (publisher, mailbox, seq) there, for ``node.cluster``

Expiry is the caller's clock (the ``now`` arguments of the storage ports), never a Redis
TTL: :meth:`Maintenance.sweep` must count what it deletes, and the node's clock is the one
that decides (``expires <= now`` has expired). (The placement keys add a Redis TTL as a
backstop only, for keys nothing sweeps; ``redis_scripts_placement`` says why.)
"""

from __future__ import annotations

from typing import Final

from node.store.redis_scripts_calls import (
    ADD_LEG,
    CLAIM_LEG,
    DELETE_LEG,
    RELEASE_LEG,
    RENEW_LEG,
    SWEEP_LEGS,
)
from node.store.redis_scripts_federation import (
    GRANT_BLOB,
    OUTBOUND_BATCH,
    OUTBOUND_DEPTHS,
    OUTBOUND_DONE,
    OUTBOUND_PUT,
    PUT_BLOB,
    RECORD_TXN,
    REMEMBER_NONCE,
)
from node.store.redis_scripts_grouptokens import PUT_GROUP_VERIFIER, REVOKE_GROUP_VERIFIER
from node.store.redis_scripts_mailboxes import ACK, COUNT_PENDING, ENQUEUE, ENQUEUE_SHARED, PENDING
from node.store.redis_scripts_placement import (
    ANNOUNCE_MEDIA,
    PLACE_ROOM,
    RELEASE_ROOM,
    RENEW_ROOM,
    WITHDRAW_MEDIA,
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
    "add_leg": ADD_LEG,
    "claim_leg": CLAIM_LEG,
    "release_leg": RELEASE_LEG,
    "renew_leg": RENEW_LEG,
    "delete_leg": DELETE_LEG,
    "sweep_legs": SWEEP_LEGS,
    "put_group_token": PUT_GROUP_VERIFIER,
    "revoke_group_token": REVOKE_GROUP_VERIFIER,
    "announce_media": ANNOUNCE_MEDIA,
    "withdraw_media": WITHDRAW_MEDIA,
    "place_room": PLACE_ROOM,
    "renew_room": RENEW_ROOM,
    "release_room": RELEASE_ROOM,
}
