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
    pending          1  (EVALSHA: ZRANGE by seq, per envelope ZSCORE expiry + HGET body)
    ack              1  (EVALSHA for the whole list; 0 for an empty list)
    take_bundle      1  (EVALSHA: HMGET standing keys, ZPOPMIN, ZPOPMIN)
    put_prekeys      1  (EVALSHA: HSET, per one-time key SADD seen + ZADD)
    register         1      put_blob  1      get_blob / blob_grant  1 (HMGET)
    sweep            1 per 1000 expired items of the largest kind
    stats            1

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

The coredis client runs under trio (through anyio) and must be used inside its async
context; :meth:`open` enters it in a trio system task that lives until :meth:`aclose`,
so the store can be opened and closed by different tasks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Final, TypeVar

import anyio
import coredis
import msgpack
import trio
from coredis.connection import TCPLocation
from coredis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from coredis.exceptions import (
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    SentinelError,
)
from coredis.retry import ExponentialBackoffRetryPolicy, NoRetryPolicy

from node.store import redis_scripts as lua
from node.store.base import (
    BundleParts,
    DeviceRecord,
    OutboundItem,
    PrekeyRecord,
    StoredEnvelope,
    SweepResult,
)
from node.store.errors import StoreClosed, StoreError

DURABILITIES: Final = ("primary", "replicated")
DEFAULT_PREFIX: Final = "sealrelay:"
DEFAULT_RETRY_FOR: Final = 5.0  # seconds of retrying while Sentinel promotes a replica
DEFAULT_WAIT_TIMEOUT_MS: Final = 1000
CONNECT_TIMEOUT: Final = 1.0
STREAM_TIMEOUT: Final = 10.0
SWEEP_CHUNK: Final = 1000
REPLICA_ID_BYTES: Final = 8
PUSH_ENVELOPE: Final = b"E"  # a push notice: b"E" + replica id + len + mailbox + seq (ASCII)
PUSH_CLAIM: Final = b"C"  # a mailbox claim: b"C" + replica id + len + mailbox
_FIRST_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 0.5
# Replies that mean "the primary is changing": retried like a dropped connection.
_TRANSIENT_REPLIES: Final = ("MASTERDOWN", "LOADING", "READONLY", "NOREPLICAS", "TRYAGAIN")
_TRANSIENT: Final = (
    RedisConnectionError,
    ReadOnlyError,
    SentinelError,
    TimeoutError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)

_T = TypeVar("_T")


class RedisStore:
    """Open with :meth:`open` or :meth:`open_sentinel`; close with :meth:`aclose`."""

    def __init__(
        self,
        client: Any,
        stack: AsyncExitStack,
        *,
        prefix: str,
        durability: str,
        retry_for: float,
        wait_timeout_ms: int,
    ) -> None:
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}")
        self._client = client
        self._stack = stack
        self._prefix = prefix.encode()
        self.durability = durability
        self.retry_for = retry_for
        self._wait_timeout_ms = wait_timeout_ms
        self._shas = {name: hashlib.sha1(s.encode()).hexdigest() for name, s in lua.ALL.items()}  # noqa: S324 - Redis names scripts by SHA-1
        self.replica_id = secrets.token_bytes(REPLICA_ID_BYTES)
        self.push_channel = self._key("push")
        self._closed = False
        self._host_failed: BaseException | None = None
        self._stop = trio.Event()
        self._stopped = trio.Event()

    # --- opening and closing ---------------------------------------------------------------
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
        client = coredis.Redis.from_url(url, **_client_options())
        stack = AsyncExitStack()
        store = cls(
            client,
            stack,
            prefix=prefix,
            durability=durability,
            retry_for=retry_for,
            wait_timeout_ms=wait_timeout_ms,
        )
        await store._start([client])
        return store

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
        if not sentinels:
            raise ValueError("at least one sentinel is needed")
        sentinel = coredis.Sentinel(
            [TCPLocation(host, port) for host, port in sentinels],
            sentinel_kwargs={
                "connect_timeout": CONNECT_TIMEOUT,
                "stream_timeout": CONNECT_TIMEOUT,
            },
            retry_policy=NoRetryPolicy(),
            decode_responses=False,
            connect_timeout=CONNECT_TIMEOUT,
            stream_timeout=STREAM_TIMEOUT,
        )
        client = sentinel.primary_for(master)
        store = cls(
            client,
            AsyncExitStack(),
            prefix=prefix,
            durability=durability,
            retry_for=retry_for,
            wait_timeout_ms=wait_timeout_ms,
        )
        await store._start([sentinel, client])
        return store

    async def _start(self, contexts: list[Any]) -> None:
        ready = trio.Event()
        trio.lowlevel.spawn_system_task(self._host, contexts, ready, name="redis-store-host")
        await ready.wait()
        if self._host_failed is not None:
            raise StoreError(f"cannot start the Redis client: {self._host_failed}")
        try:
            await self._call("opening", self._load_scripts)
        except StoreError:
            await self.aclose()
            raise

    async def _host(self, contexts: list[Any], ready: trio.Event) -> None:
        """Holds the coredis contexts (their connection tasks live in it) until closed."""
        try:
            async with self._stack:
                for context in contexts:
                    await self._stack.enter_async_context(context)
                ready.set()
                await self._stop.wait()
        except BaseException as exc:  # a system task must not raise
            self._host_failed = exc
        finally:
            self._closed = self._host_failed is not None or self._closed
            ready.set()
            self._stopped.set()

    async def aclose(self) -> None:
        """Close the connections; later calls raise :class:`StoreClosed`."""
        self._closed = True
        self._stop.set()
        await self._stopped.wait()

    # --- the one way to the server ------------------------------------------------------------
    async def _call(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt`` with the retry policy of the module docstring."""
        if self._host_failed is not None:
            raise StoreError(f"the Redis client stopped: {self._host_failed!r}")
        if self._closed:
            raise StoreClosed("the store is closed")
        deadline = trio.current_time() + self.retry_for
        backoff = _FIRST_BACKOFF
        while True:
            try:
                return await attempt()
            except _TRANSIENT as exc:
                failure: BaseException = exc
            except ResponseError as exc:
                if not str(exc).startswith(_TRANSIENT_REPLIES):
                    raise StoreError(f"redis refused {what}: {exc}") from None
                failure = exc
            except RedisError as exc:
                raise StoreError(f"redis failed {what}: {exc}") from None
            if self._closed:
                raise StoreClosed("the store is closed")
            if trio.current_time() + backoff > deadline:
                raise StoreError(
                    f"redis unavailable for {what} after {self.retry_for:g} s:"
                    f" {type(failure).__name__}: {failure}"
                ) from None
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _run(self, name: str, keys: list[bytes], args: list[Any], *, write: bool) -> Any:
        """Run script ``name``; a write under "replicated" durability waits for a replica."""
        wait = write and self.durability == "replicated"

        async def attempt() -> Any:
            try:
                return await self._evalsha(name, keys, args, wait)
            except NoScriptError:
                await self._load_scripts()
                return await self._evalsha(name, keys, args, wait)

        return await self._call(name, attempt)

    async def _evalsha(self, name: str, keys: list[bytes], args: list[Any], wait: bool) -> Any:
        sha = self._shas[name]
        if not wait:
            return await self._client.evalsha(sha, keys=keys, args=args)
        async with self._client.pipeline(transaction=False) as pipe:
            result = pipe.evalsha(sha, keys=keys, args=args)
            acked = pipe.wait(1, self._wait_timeout_ms)
        if await acked < 1:
            raise StoreError(
                f"{name}: no replica confirmed the write within {self._wait_timeout_ms} ms"
                " (it is on the primary only)"
            )
        return await result

    async def _load_scripts(self) -> None:
        """Load every script in one round trip (after opening, and after ``NOSCRIPT``)."""
        async with self._client.pipeline(transaction=False) as pipe:
            loaded = {name: pipe.script_load(source) for name, source in lua.ALL.items()}
        for name, sha in loaded.items():
            self._shas[name] = _text(await sha)

    async def _read(self, what: str, command: Callable[[Any], Awaitable[_T]]) -> _T:
        return await self._call(what, lambda: command(self._client))

    def _key(self, *parts: bytes | str) -> bytes:
        return self._prefix + b"".join(p.encode() if isinstance(p, str) else p for p in parts)

    # --- cross-replica push (node.cluster) ---------------------------------------------------
    def subscribe_push(self) -> AbstractAsyncContextManager[Any]:
        """A coredis ``PubSub`` on :attr:`push_channel`; enter it in the task that reads it.

        It yields messages (dicts) with ``type`` and ``data``: a "subscribe" message when
        the subscription is in place, again after coredis re-established it (messages
        published meanwhile are lost), and "message" for each notice. Reconnection is
        retried without end (backoff up to 2 s)."""
        retry = ExponentialBackoffRetryPolicy(
            (RedisConnectionError, SentinelError, TimeoutError),
            retries=None,
            base_delay=0.1,
            max_delay=2,
            jitter=True,
        )
        pubsub: AbstractAsyncContextManager[Any] = self._client.pubsub(
            channels=[self.push_channel], retry_policy=retry
        )
        return pubsub

    async def publish_push(self, notice: bytes) -> None:
        """Publish ``notice`` on :attr:`push_channel` (a claim; enqueue publishes its own)."""
        await self._call("publish", lambda: self._client.publish(self.push_channel, notice))

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
        packed = await self._read("device", lambda c: c.hget(key, str(device)))
        return None if packed is None else _unpack_device(packed)

    async def devices(self, address: str) -> list[DeviceRecord]:
        key = self._key("dev:", address)
        found = await self._read("devices", lambda c: c.hgetall(key))
        return sorted((_unpack_device(v) for v in found.values()), key=lambda d: d.device)

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None:
        key = self._key("mbox")
        packed = await self._read("mailbox_owner", lambda c: c.hget(key, mailbox))
        return None if packed is None else _unpack_device(packed)

    async def set_token_verifier(self, address: str, verifier: bytes) -> None:
        await self._set_field("verifier", address, verifier)

    async def token_verifier(self, address: str) -> bytes | None:
        key = self._key("verifier")
        found: bytes | None = await self._read("token_verifier", lambda c: c.hget(key, address))
        return found

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        await self._set_field("intro", address, b"1" if accept else b"0")

    async def accepts_introductions(self, address: str) -> bool:
        key = self._key("intro")
        found = await self._read("accepts_introductions", lambda c: c.hget(key, address))
        return bool(found == b"1")

    async def _set_field(self, table: str, field: str, value: bytes) -> None:
        # One HSET is atomic on its own; "replicated" still pipelines WAIT after it.
        key = self._key(table)
        if self.durability != "replicated":
            await self._read(table, lambda c: c.hset(key, {field: value}))
            return

        async def attempt() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(key, {field: value})
                acked = pipe.wait(1, self._wait_timeout_ms)
            if await acked < 1:
                raise StoreError(f"{table}: no replica confirmed the write")

        await self._call(table, attempt)

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
            async with self._client.pipeline(transaction=False) as pipe:
                a, b = pipe.zcard(dh), pipe.zcard(kem)
            return await a, await b

        return await self._call("prekey_counts", counts)

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

    async def pending(
        self, mailbox: bytes, after_seq: int, limit: int, now: int
    ) -> list[StoredEnvelope]:
        if limit <= 0:
            return []
        queue, bodies, member = self._mailbox_keys(mailbox)
        keys = [queue, bodies, self._key("env:exp")]
        flat = await self._run("pending", keys, [after_seq, limit, now, member], write=False)
        out = []
        for i in range(0, len(flat), 3):
            eid, seq, packed = flat[i : i + 3]
            ts, expires, origin, sender, body = msgpack.unpackb(packed)
            out.append(StoredEnvelope(mailbox, eid, int(seq), ts, expires, origin, sender, body))
        return out

    async def count_pending(self, mailbox: bytes, now: int) -> int:
        queue, _, member = self._mailbox_keys(mailbox)
        keys = [queue, self._key("env:exp")]
        return int(await self._run("count_pending", keys, [member, now], write=False))

    async def ack(self, mailbox: bytes, eids: list[bytes]) -> int:
        if self._closed:
            raise StoreClosed("the store is closed")
        if not eids:
            return 0
        queue, bodies, member = self._mailbox_keys(mailbox)
        keys = [queue, bodies, self._key("env:exp"), self._key("tomb:exp")]
        return int(await self._run("ack", keys, [member, *eids], write=True))

    # --- blobs ---------------------------------------------------------------------------
    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        keys = [self._key("blob:", blob), self._key("blobs:exp"), self._key("blobstat")]
        await self._run("grant_blob", keys, [token_hash, size, expires, blob], write=True)

    async def blob_grant(self, blob: bytes, token_hash: bytes, now: int) -> int | None:
        key = self._key("blob:", blob)

        async def read() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                fields = pipe.hmget(key, ["t", "s", "e"])
                uploaded = pipe.hexists(key, "d")
            return [*(await fields), await uploaded]

        stored, size, expires, uploaded = await self._call("blob_grant", read)
        if stored is None or uploaded or int(expires) <= now:
            return None
        return int(size) if hmac.compare_digest(stored, token_hash) else None

    async def put_blob(self, blob: bytes, token_hash: bytes, data: bytes, now: int) -> bool:
        keys = [self._key("blob:", blob), self._key("blobstat")]
        return bool(await self._run("put_blob", keys, [token_hash, data, now], write=True))

    async def get_blob(self, blob: bytes, now: int) -> bytes | None:
        key = self._key("blob:", blob)
        expires, data = await self._read("get_blob", lambda c: c.hmget(key, ["e", "d"]))
        if expires is None or int(expires) <= now:
            return None
        found: bytes | None = data
        return found

    # --- federation: the durable outbound queue --------------------------------------------
    def _queue_keys(self, domain: str) -> list[bytes]:
        return [self._key(kind, domain) for kind in ("ob:", "obi:", "obx:", "obt:", "obopen:")]

    async def outbound_put(self, item: OutboundItem) -> bool:
        keys = [*self._queue_keys(item.domain)[:3], self._key("obdomains"), self._key("obseq")]
        args = [item.eid, item.layer, item.expires, item.domain]
        return bool(await self._run("outbound_put", keys, args, write=True))

    async def outbound_batch(
        self, domain: str, txn: bytes, limit: int, max_bytes: int, now: int
    ) -> tuple[bytes, list[OutboundItem]]:
        args = [txn, max(limit, 1), max_bytes, now]
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
        found: bytes | None = await self._read("txn_result", lambda c: c.hget(key, member))
        return found

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None:
        keys = [self._key("txn"), self._key("txn:exp")]
        args = [_origin_member(origin, txn), result, expires]
        await self._run("record_txn", keys, args, write=True)

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        keys = [self._key("nonce")]
        args = [_origin_member(origin, nonce), expires]
        return bool(await self._run("remember_nonce", keys, args, write=True))

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
        ]
        values = [int(v) for v in await self._run("stats", keys, [], write=False)]
        names = ("envelopes", "tombstones", "blobs", "blob_bytes", "accounts", "devices")
        return {**dict(zip(names, values[:6], strict=True)), "invites": values[6]}


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


def _client_options() -> dict[str, Any]:
    return {
        "decode_responses": False,
        "connect_timeout": CONNECT_TIMEOUT,
        "stream_timeout": STREAM_TIMEOUT,
        "retry_policy": NoRetryPolicy(),
    }


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
