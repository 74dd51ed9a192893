"""The cluster-mode :class:`~node.store.ports.Store` on Redis (DESIGN section 7), via coredis.

    store = await RedisStore.open("redis://127.0.0.1:6379/0")
    store = await RedisStore.open_sentinel([("10.0.0.5", 26379), ...], "sealrelay",
                                           durability="replicated")
    ...
    await store.aclose()

Several node replicas share one Redis (one primary, followed through Sentinel). Every
write is one Lua script (``node.store.redis_scripts``, which also draws the key layout),
so each Store method is atomic on the server and no read-modify-write crosses the
network. Reads that need several keys are one script too.

Round trips per operation (one round trip = one batch written, one batch of replies read;
"replicated" adds ``WAIT`` to the same pipelined batch, so the counts do not change):

    enqueue          1  (EVALSHA: dedup check, INCR seq, ZADD, HSET, ZADD expiry index,
                        PUBLISH a push notice for other replicas, ``node.cluster``)
    enqueue_shared   1  (EVALSHA: the body once, then per recipient as enqueue)
    enqueue_shared_many  1 per item, in order
    pending          1  (EVALSHA: ZRANGE by seq, per envelope ZSCORE expiry + HGET body)
    ack              1  (EVALSHA for the whole list; 0 for an empty list)
    take_bundle      1  (EVALSHA: HMGET standing keys, ZPOPMIN, ZPOPMIN)
    put_prekeys      1  (EVALSHA: HSET, per one-time key SADD seen + ZADD)
    register         1      put_blob  1      get_blob / blob_grant  1 (HMGET)
    sweep            1 per 1000 expired items of the largest kind
    stats            1
    outbound_put / _batch / _done, record_txn, remember_nonce    1 each
    add_leg, leg, claim_leg, release_leg, renew_leg, delete_leg,
    count_legs                                                   1 each
    sweep_legs       1 per 1000 expired legs
    put_group_token, revoke_group_token, has_group_token, count_group_tokens      1 each
    announce_media, media_address, withdraw_media, place_room, renew_room,
    release_room, room_holder                                    1 each

:meth:`open` loads every script (one pipelined round trip). After a failover or a restart
the primary may have an empty script cache: a ``NOSCRIPT`` reply loads them all again
(one round trip) and retries once.

Durability. ``durability="primary"`` returns once the primary has applied the script
(and, with ``appendfsync always``, written it). ``"replicated"`` pipelines ``WAIT 1
<wait_timeout_ms>`` after each write and raises :class:`StoreError` when no replica
confirmed in time; the write is then on the primary only and may be lost in a failover,
which is what the error says.

Failures. A connection refused or dropped, a timeout, "no primary" from Sentinel or a
read-only replica during a failover is retried with short backoff until ``retry_for``
seconds (default 5) have passed, then raised as :class:`StoreError`. A retried write
may have been applied once already: ``enqueue`` then reports ``(False, seq)`` (the
duplicate rule), ``take_bundle`` may have consumed a key nobody received (never one
handed out twice), ``register`` may report False for an account that was created.

Blobs are Redis hash fields (bytes, bounded by the node's ``max_blob_bytes``) with their
expiry in an index that :meth:`sweep` reads; nothing here uses Redis TTLs, because
expiry follows the caller's clock and :meth:`sweep` counts what it deletes. Size Redis'
``maxmemory`` for the blobs and mailboxes you keep (with ``maxmemory-policy
noeviction``: a full Redis refuses writes, which surface as :class:`StoreError`).

The connection, the retries, the scripts' loading and ``WAIT`` are the shell in
``node.store.redis_client``; the port modules map the calls onto keys and scripts:

    RedisAccounts, RedisPrekeys                 node.store.redis_accounts
    RedisMailboxes                              node.store.redis_mailboxes
    RedisBlobs, RedisOutbound, RedisReplay      node.store.redis_federation
    RedisCallLegs                               node.store.redis_calllegs
    RedisGroupTokens                            node.store.redis_grouptokens
    RedisMediaPlacement                         node.store.redis_placement
    Maintenance (open, sweep, stats, aclose),   here
    the push channel and shared rate limits
Mailbox ids are at most 255 bytes and prekey ids 0 to 2**64-1 (``ValueError`` beyond).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from node.store.base import SweepResult
from node.store.redis_accounts import RedisAccounts, RedisPrekeys
from node.store.redis_calllegs import RedisCallLegs
from node.store.redis_client import DEFAULT_RETRY_FOR, DEFAULT_WAIT_TIMEOUT_MS, RedisClient
from node.store.redis_federation import RedisBlobs, RedisOutbound, RedisReplay
from node.store.redis_grouptokens import RedisGroupTokens
from node.store.redis_mailboxes import RedisMailboxes
from node.store.redis_parts import (
    PUSH_CLAIM,
    PUSH_ENVELOPE,
    REPLICA_ID_BYTES,
    parse_push,
    push_notice,
)
from node.store.redis_placement import RedisMediaPlacement

DEFAULT_PREFIX: Final = "sealrelay:"
SWEEP_CHUNK: Final = 1000
OUTBOUND_LEASE_MS: Final = 15_000
"""Default lease of a replica's open outbound transactions (``RedisStore.outbound_lease_ms``)."""
_STATS: Final = (
    "envelopes",
    "tombstones",
    "blobs",
    "blob_bytes",
    "accounts",
    "devices",
    "invites",
    "shared_bodies",
)  # in the order of the stats script's reply


__all__ = [
    "DEFAULT_PREFIX",
    "OUTBOUND_LEASE_MS",
    "PUSH_CLAIM",
    "PUSH_ENVELOPE",
    "REPLICA_ID_BYTES",
    "RedisStore",
    "parse_push",
    "push_notice",
]


class RedisStore(
    RedisAccounts,
    RedisPrekeys,
    RedisMailboxes,
    RedisBlobs,
    RedisOutbound,
    RedisReplay,
    RedisCallLegs,
    RedisGroupTokens,
    RedisMediaPlacement,
):
    """Every port on one client. Open with :meth:`open` or :meth:`open_sentinel`; close
    with :meth:`aclose`."""

    def __init__(self, redis: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix.encode()
        self.replica_id = secrets.token_bytes(REPLICA_ID_BYTES)
        self.outbound_lease_ms = OUTBOUND_LEASE_MS
        """How long a replica's open outbound transactions are its own after it last took
        them: a replica quiet for longer (killed) loses them to the next one that asks."""
        self.push_channel = self._key("push")

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        durability: str = "primary",
        retry_for: float = DEFAULT_RETRY_FOR,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
    ) -> RedisStore:
        """Connect to the Redis at ``url`` (``redis://host:port/db``, ``rediss://`` for
        TLS); :class:`StoreError` if it does not answer within ``retry_for`` seconds."""
        redis = await RedisClient.open(
            url, durability=durability, retry_for=retry_for, wait_timeout_ms=wait_timeout_ms
        )
        return cls(redis, prefix)

    @classmethod
    async def open_sentinel(
        cls,
        sentinels: Sequence[tuple[str, int]],
        master: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        durability: str = "primary",
        retry_for: float = DEFAULT_RETRY_FOR,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
    ) -> RedisStore:
        """Connect to the primary that the Sentinels ``sentinels`` name for ``master``, and
        follow it through failovers."""
        redis = await RedisClient.open_sentinel(
            sentinels,
            master,
            durability=durability,
            retry_for=retry_for,
            wait_timeout_ms=wait_timeout_ms,
        )
        return cls(redis, prefix)

    async def aclose(self) -> None:
        """Close the connections; later calls raise :class:`StoreClosed`."""
        await self._redis.aclose()

    @property
    def durability(self) -> str:
        return self._redis.durability

    @property
    def retry_for(self) -> float:
        return self._redis.retry_for

    # --- cross-replica push (node.cluster) ---------------------------------------------------
    def subscribe_push(self) -> AbstractAsyncContextManager[Any]:
        """A subscription to :attr:`push_channel` (``RedisClient.subscribe``)."""
        return self._redis.subscribe(self.push_channel)

    async def publish_push(self, notice: bytes) -> None:
        """Publish ``notice`` on :attr:`push_channel` (a claim; enqueue publishes its own)."""
        await self._redis.publish(self.push_channel, notice)

    # --- shared rate limits (node.clusterlimits) ----------------------------------------
    async def rate_salt(self) -> bytes:
        """The salt every replica hashes rate-limit keys with (created by the first)."""
        salt: bytes = await self._run(
            "rate_salt", [self._key("rl:salt")], [secrets.token_bytes(32)], write=True
        )
        return salt

    async def share_rates(
        self, window: int, spent: Sequence[tuple[str, bytes, float]], ttl_ms: int
    ) -> list[tuple[float, float]]:
        """Add what this replica spent, ``(limiter, key hash, amount)`` per entry, to the
        counters of ``window``; what the other replicas spent per entry in ``window - 1``
        and in ``window``."""
        keys: list[bytes] = []
        args: list[Any] = [self.replica_id, ttl_ms]
        for name, key_hash, amount in spent:
            base = self._key("rl:", name, ":", key_hash, ":")
            keys += [base + str(window - 1).encode(), base + str(window).encode()]
            args.append(repr(float(amount)))
        if not keys:
            return []
        flat = await self._run("share_rates", keys, args, write=False)
        return [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    # --- housekeeping --------------------------------------------------------------------
    async def sweep(self, now: int) -> SweepResult:
        keys = [
            self._key("env:exp"),
            self._key("tomb:exp"),
            self._key("blobs:exp"),
            self._key("blobstat"),
            self._key("inv:exp"),
            self._key("inv"),
            self._key("obdomains"),
            self._key("txn:exp"),
            self._key("txn"),
            self._key("nonce"),
            self._key("sbodies"),
        ]
        totals = [0, 0, 0, 0, 0]
        while True:
            *counts, more = await self._run(
                "sweep", keys, [self._prefix, now, SWEEP_CHUNK], write=True
            )
            totals = [t + int(c) for t, c in zip(totals, counts, strict=True)]
            if not more:
                break
        envelopes, blobs, tombstones, invites, outbound = totals
        return SweepResult(
            envelopes=envelopes,
            blobs=blobs,
            tombstones=tombstones,
            invites=invites,
            outbound=outbound,
        )

    async def stats(self) -> dict[str, int]:
        keys = [
            self._key("env:exp"),
            self._key("tomb:exp"),
            self._key("blobstat"),
            self._key("addrs"),
            self._key("mbox"),
            self._key("inv:exp"),
            self._key("sbodies"),
        ]
        values = [int(v) for v in await self._run("stats", keys, [], write=False)]
        return dict(zip(_STATS, values, strict=True))
