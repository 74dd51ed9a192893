"""The cluster-mode :class:`~node.store.base.Store` on Redis (DESIGN section 7), via coredis.

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
``node.store.redis_client``; this module maps the Store calls onto keys and scripts.
Mailbox ids are at most 255 bytes and prekey ids 0 to 2**64-1 (``ValueError`` beyond).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import msgpack

from node.store.base import (
    BundleParts,
    DeviceRecord,
    OutboundItem,
    PrekeyRecord,
    StoredEnvelope,
    SweepResult,
)
from node.store.redis_client import DEFAULT_RETRY_FOR, DEFAULT_WAIT_TIMEOUT_MS, RedisClient

DEFAULT_PREFIX: Final = "sealrelay:"
SWEEP_CHUNK: Final = 1000
REPLICA_ID_BYTES: Final = 8
OUTBOUND_LEASE_MS: Final = 15_000
"""Default lease of a replica's open outbound transactions (``RedisStore.outbound_lease_ms``)."""
PUSH_ENVELOPE: Final = b"E"  # a push notice: b"E" + replica id + len + mailbox + seq (ASCII)
PUSH_CLAIM: Final = b"C"  # a mailbox claim: b"C" + replica id + len + mailbox
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


class RedisStore:
    """Open with :meth:`open` or :meth:`open_sentinel`; close with :meth:`aclose`."""

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

    def _key(self, *parts: bytes | str) -> bytes:
        return self._prefix + b"".join(p.encode() if isinstance(p, str) else p for p in parts)

    async def _run(self, name: str, keys: list[bytes], args: list[Any], *, write: bool) -> Any:
        return await self._redis.run(name, keys, args, write=write)

    # --- cross-replica push (node.cluster) ---------------------------------------------------
    def subscribe_push(self) -> AbstractAsyncContextManager[Any]:
        """A subscription to :attr:`push_channel` (``RedisClient.subscribe``)."""
        return self._redis.subscribe(self.push_channel)

    async def publish_push(self, notice: bytes) -> None:
        """Publish ``notice`` on :attr:`push_channel` (a claim; enqueue publishes its own)."""
        await self._redis.publish(self.push_channel, notice)

    # --- enrollment and accounts -------------------------------------------------------
    async def add_invite(self, code_hash: bytes, name: str, expires: int) -> None:
        keys = [self._key("inv"), self._key("inv:exp")]
        await self._run("add_invite", keys, [code_hash, name, expires], write=True)

    async def register(self, code_hash: bytes, name: str, device: DeviceRecord, now: int) -> bool:
        keys = [
            self._key("inv"),
            self._key("inv:exp"),
            self._key("dev:", device.address),
            self._key("mbox"),
            self._key("addrs"),
        ]
        args = [code_hash, name, now, device.mailbox, device.device, _pack_device(device)]
        args.append(device.address)
        return bool(await self._run("register", keys, args, write=True))

    async def device(self, address: str, device: int) -> DeviceRecord | None:
        key = self._key("dev:", address)
        packed = await self._redis.read("device", lambda c: c.hget(key, str(device)))
        return None if packed is None else _unpack_device(packed)

    async def has_account(self, name: str) -> bool:
        key, pattern = self._key("addrs"), f"{name}@*"  # names hold no glob characters

        async def scan(client: Any) -> bool:
            cursor = 0
            while True:
                cursor, found = await client.sscan(key, cursor, match=pattern, count=1000)
                if found or not cursor:
                    return bool(found)

        found: bool = await self._redis.read("has_account", scan)
        return found

    async def devices(self, address: str) -> list[DeviceRecord]:
        key = self._key("dev:", address)
        found = await self._redis.read("devices", lambda c: c.hgetall(key))
        return sorted((_unpack_device(v) for v in found.values()), key=lambda d: d.device)

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None:
        key = self._key("mbox")
        packed = await self._redis.read("mailbox_owner", lambda c: c.hget(key, mailbox))
        return None if packed is None else _unpack_device(packed)

    async def set_token_verifier(self, address: str, verifier: bytes) -> None:
        await self._set_field("verifier", address, verifier)

    async def token_verifier(self, address: str) -> bytes | None:
        key = self._key("verifier")
        found: bytes | None = await self._redis.read(
            "token_verifier", lambda c: c.hget(key, address)
        )
        return found

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        await self._set_field("intro", address, b"1" if accept else b"0")

    async def accepts_introductions(self, address: str) -> bool:
        key = self._key("intro")
        found = await self._redis.read("accepts_introductions", lambda c: c.hget(key, address))
        return bool(found == b"1")

    async def _set_field(self, table: str, field: str, value: bytes) -> None:
        key = self._key(table)
        await self._redis.write(table, lambda c: c.hset(key, {field: value}))

    # --- prekeys -------------------------------------------------------------------------
    def _device_keys(self, address: str, device: int) -> list[bytes]:
        dev = address.encode() + b"\x00" + str(device).encode()
        return [self._key(kind, dev) for kind in ("pk:", "otk:", "kotk:", "seen:")]

    async def put_prekeys(self, address: str, device: int, record: PrekeyRecord) -> None:
        args: list[Any] = [
            record.identity,
            record.signed_prekey,
            record.last_resort,
            record.sealed_key,
        ]
        for keys in (record.one_time, record.kem_one_time):
            args.append(len(keys))
            for key_id, key in sorted(keys.items()):
                args += [_key_id(key_id), key]
        await self._run("put_prekeys", self._device_keys(address, device), args, write=True)

    async def take_bundle(self, address: str, device: int) -> BundleParts | None:
        keys = self._device_keys(address, device)[:3]
        found = await self._run("take_bundle", keys, [], write=True)
        if found is None:
            return None
        identity, signed_prekey, sealed_key, last_resort, one_time, kem = found
        return BundleParts(
            identity=identity,
            signed_prekey=signed_prekey,
            sealed_key=sealed_key,
            one_time=None if one_time is None else one_time[8:],
            kem_prekey=last_resort if kem is None else kem[8:],
            kem_last_resort=kem is None,
        )

    async def prekey_counts(self, address: str, device: int) -> tuple[int, int]:
        _, dh, kem, _ = self._device_keys(address, device)

        async def counts() -> tuple[int, int]:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                a, b = pipe.zcard(dh), pipe.zcard(kem)
            return await a, await b

        return await self._redis.call("prekey_counts", counts)

    # --- mailboxes -----------------------------------------------------------------------
    def _mailbox_keys(self, mailbox: bytes) -> tuple[bytes, bytes, bytes]:
        if len(mailbox) > 255:
            raise ValueError("a mailbox id is at most 255 bytes")
        return self._key("q:", mailbox), self._key("b:", mailbox), bytes([len(mailbox)]) + mailbox

    async def enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        queue, bodies, member = self._mailbox_keys(envelope.mailbox)
        keys = [self._key("seq"), queue, bodies, self._key("env:exp"), self._key("tomb:exp")]
        packed = msgpack.packb(
            [envelope.ts, envelope.expires, envelope.origin, envelope.sender, envelope.body]
        )
        notice = push_notice(self.replica_id, envelope.mailbox)
        args = [envelope.eid, member + envelope.eid, envelope.expires, packed]
        args += [self.push_channel, notice]
        stored, seq = await self._run("enqueue", keys, args, write=True)
        return bool(stored), int(seq)

    async def enqueue_many(self, envelopes: list[StoredEnvelope]) -> list[tuple[bool, int]]:
        """Each envelope with its own script, in order (one round trip each): a failure
        part way leaves the earlier ones stored, which a retry of the same eids finds as
        duplicates."""
        return [await self.enqueue(envelope) for envelope in envelopes]

    async def enqueue_shared(
        self, body: bytes, envelopes: list[StoredEnvelope]
    ) -> list[tuple[bool, int]]:
        if not envelopes:
            self._redis.check_open()
            return []
        keys = [self._key("seq"), self._key("tomb:exp"), self._key("env:exp"), self._key("sbodies")]
        notice = PUSH_ENVELOPE + self.replica_id
        args: list[Any] = [self._prefix, secrets.token_bytes(16), body, self.push_channel, notice]
        for env in envelopes:
            self._mailbox_keys(env.mailbox)  # checks the mailbox id's length
            packed = msgpack.packb([env.ts, env.expires, env.origin, env.sender, b""])
            args += [env.mailbox, env.eid, env.expires, packed]
        flat = await self._run("enqueue_shared", keys, args, write=True)
        return [(bool(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def enqueue_shared_many(
        self, items: list[tuple[bytes, list[StoredEnvelope]]]
    ) -> list[list[tuple[bool, int]]]:
        """One script per item, in order (see :meth:`enqueue_many`)."""
        return [await self.enqueue_shared(body, envelopes) for body, envelopes in items]

    async def pending(
        self, mailbox: bytes, after_seq: int, limit: int, now: int
    ) -> list[StoredEnvelope]:
        if limit <= 0:
            return []
        queue, bodies, member = self._mailbox_keys(mailbox)
        keys = [queue, bodies, self._key("env:exp"), self._key("bref:", mailbox)]
        args = [after_seq, limit, now, member, self._prefix]
        flat = await self._run("pending", keys, args, write=False)
        out = []
        for i in range(0, len(flat), 4):
            eid, seq, packed, shared = flat[i : i + 4]
            ts, expires, origin, sender, body = msgpack.unpackb(packed)
            body = body if shared is None else shared
            out.append(StoredEnvelope(mailbox, eid, int(seq), ts, expires, origin, sender, body))
        return out

    async def count_pending(self, mailbox: bytes, now: int) -> int:
        queue, _, member = self._mailbox_keys(mailbox)
        keys = [queue, self._key("env:exp")]
        return int(await self._run("count_pending", keys, [member, now], write=False))

    async def ack(self, mailbox: bytes, eids: list[bytes]) -> int:
        self._redis.check_open()
        if not eids:
            return 0
        queue, bodies, member = self._mailbox_keys(mailbox)
        keys = [queue, bodies, self._key("env:exp"), self._key("tomb:exp")]
        keys += [self._key("bref:", mailbox), self._key("sbodies")]
        return int(await self._run("ack", keys, [member, self._prefix, *eids], write=True))

    # --- blobs ---------------------------------------------------------------------------
    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        keys = [self._key("blob:", blob), self._key("blobs:exp"), self._key("blobstat")]
        await self._run("grant_blob", keys, [token_hash, size, expires, blob], write=True)

    async def blob_grant(self, blob: bytes, token_hash: bytes, now: int) -> int | None:
        key = self._key("blob:", blob)

        async def read() -> list[Any]:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                fields = pipe.hmget(key, ["t", "s", "e"])
                uploaded = pipe.hexists(key, "d")
            return [*(await fields), await uploaded]

        stored, size, expires, uploaded = await self._redis.call("blob_grant", read)
        if stored is None or uploaded or int(expires) <= now:
            return None
        return int(size) if hmac.compare_digest(stored, token_hash) else None

    async def put_blob(self, blob: bytes, token_hash: bytes, data: bytes, now: int) -> bool:
        keys = [self._key("blob:", blob), self._key("blobstat")]
        return bool(await self._run("put_blob", keys, [token_hash, data, now], write=True))

    async def get_blob(self, blob: bytes, now: int) -> bytes | None:
        key = self._key("blob:", blob)
        expires, data = await self._redis.read("get_blob", lambda c: c.hmget(key, ["e", "d"]))
        if expires is None or int(expires) <= now:
            return None
        found: bytes | None = data
        return found

    # --- federation: the durable outbound queue --------------------------------------------
    def _queue_keys(self, domain: str) -> list[bytes]:
        kinds = ("obs:", "obi:", "obx:", "obsid:", "obtx:", "obtxn:")
        return [self._key(kind, domain) for kind in kinds]

    async def outbound_put(self, item: OutboundItem) -> bool:
        keys = [*self._queue_keys(item.domain)[:4], self._key("obdomains")]
        args = [item.eid, item.layer, item.expires, item.domain]
        return bool(await self._run("outbound_put", keys, args, write=True))

    async def outbound_batch(
        self,
        domain: str,
        txn: bytes,
        limit: int,
        max_bytes: int,
        now: int,
        busy: Collection[bytes] = (),
    ) -> tuple[bytes, list[OutboundItem]]:
        args = [txn, max(limit, 1), max_bytes, now, self.replica_id, self.outbound_lease_ms]
        args += list(busy)
        flat = await self._run("outbound_batch", self._queue_keys(domain), args, write=True)
        items = [
            OutboundItem(domain, flat[i], int(flat[i + 1]), flat[i + 2])
            for i in range(1, len(flat), 3)
        ]
        return flat[0], items

    async def outbound_done(self, domain: str, txn: bytes, retry: list[bytes]) -> int:
        keys = self._queue_keys(domain)
        return int(await self._run("outbound_done", keys, [txn, *retry], write=True))

    async def outbound_depths(self, now: int) -> dict[str, int]:
        keys = [self._key("obdomains")]
        flat = await self._run("outbound_depths", keys, [self._prefix, now], write=False)
        return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    # --- federation: what the receiving side remembers ------------------------------------
    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        key, member = self._key("txn"), _origin_member(origin, txn)
        found: bytes | None = await self._redis.read("txn_result", lambda c: c.hget(key, member))
        return found

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None:
        keys = [self._key("txn"), self._key("txn:exp")]
        args = [_origin_member(origin, txn), result, expires]
        await self._run("record_txn", keys, args, write=True)

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        keys = [self._key("nonce")]
        args = [_origin_member(origin, nonce), expires]
        return bool(await self._run("remember_nonce", keys, args, write=True))

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


def push_notice(replica_id: bytes, mailbox: bytes, kind: bytes = PUSH_ENVELOPE) -> bytes:
    """The start of a message on :attr:`RedisStore.push_channel` (see ``node.cluster``)."""
    return kind + replica_id + bytes([len(mailbox)]) + mailbox


def parse_push(message: bytes) -> tuple[bytes, bytes, bytes, int]:
    """``(kind, replica id, mailbox, seq)`` of a push-channel message (seq 0 for a claim);
    ``ValueError`` if it is malformed."""
    kind, rest = message[:1], message[1:]
    if kind not in (PUSH_ENVELOPE, PUSH_CLAIM) or len(rest) < REPLICA_ID_BYTES + 1:
        raise ValueError("not a push notice")
    replica, size = rest[:REPLICA_ID_BYTES], rest[REPLICA_ID_BYTES]
    mailbox = rest[REPLICA_ID_BYTES + 1 : REPLICA_ID_BYTES + 1 + size]
    tail = rest[REPLICA_ID_BYTES + 1 + size :]
    if len(mailbox) != size or (kind == PUSH_CLAIM and tail):
        raise ValueError("not a push notice")
    if kind == PUSH_CLAIM:
        return kind, replica, mailbox, 0
    if not tail.isdigit():
        raise ValueError("not a push notice")
    return kind, replica, mailbox, int(tail)


def _origin_member(origin: str, value: bytes) -> bytes:
    raw = origin.encode()
    return len(raw).to_bytes(2, "big") + raw + value


def _key_id(key_id: int) -> bytes:
    if not 0 <= key_id < 1 << 64:
        raise ValueError(f"prekey id {key_id} is outside 0..2**64-1")
    return key_id.to_bytes(8, "big")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pack_device(d: DeviceRecord) -> bytes:
    packed: bytes = msgpack.packb([d.address, d.device, d.identity, d.mailbox, d.created])
    return packed


def _unpack_device(packed: bytes) -> DeviceRecord:
    address, device, identity, mailbox, created = msgpack.unpackb(packed)
    return DeviceRecord(address, device, identity, mailbox, created)
