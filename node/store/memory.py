"""The in-memory :class:`~node.store.ports.Store` (every port in one class, the call legs
in a base of their own, ``node.store.memory_calllegs``, the media placement in
``node.store.local_placement``), for unit tests.

It implements the ports' semantics exactly (the contract tests in ``tests/node/store``,
one module per port, run against it and the SQLite and Redis backends alike). Each method runs
without yielding after its first checkpoint, so it is atomic with respect to other trio
tasks, the way a single transaction or Redis script is.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from node.store.base import (
    BundleParts,
    DeviceRecord,
    LegRecord,
    OutboundItem,
    PrekeyRecord,
    StoredEnvelope,
    SweepResult,
)
from node.store.errors import StoreClosed
from node.store.local_placement import LocalMediaPlacement
from node.store.memory_calllegs import MemoryCallLegs
from node.store.memory_grouptokens import MemoryGroupTokens
from node.store.placement import PlacementTable

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass
class _Prekeys:
    identity: bytes
    signed_prekey: bytes
    last_resort: bytes
    sealed_key: bytes
    one_time: dict[int, bytes] = field(default_factory=dict)
    kem_one_time: dict[int, bytes] = field(default_factory=dict)
    # Every one-time id ever stored, so a re-upload never brings back a taken key.
    seen: set[int] = field(default_factory=set)
    kem_seen: set[int] = field(default_factory=set)


@dataclass
class _Queued:
    item: OutboundItem
    txn: bytes = b""  # the transaction it was put in, b"" while it waits for one


@dataclass
class _Blob:
    token_hash: bytes
    size: int
    expires: int
    data: bytes | None = None


class MemoryStore(MemoryCallLegs, MemoryGroupTokens, LocalMediaPlacement):
    """Everything in dictionaries; nothing survives the process."""

    def __init__(self) -> None:
        self._invites: dict[bytes, tuple[str, int]] = {}
        self._devices: dict[tuple[str, int], DeviceRecord] = {}
        self._mailboxes: dict[bytes, tuple[str, int]] = {}
        self._verifiers: dict[str, bytes] = {}
        self._introductions: dict[str, bool] = {}
        self._prekeys: dict[tuple[str, int], _Prekeys] = {}
        # mailbox -> eid -> envelope, in insertion (= seq) order
        self._queues: dict[bytes, dict[bytes, StoredEnvelope]] = {}
        self._tombstones: dict[tuple[bytes, bytes], int] = {}
        self._blobs: dict[bytes, _Blob] = {}
        self._seq = 0
        # federation: domain -> eid -> queued item, in queue order
        self._outbound: dict[str, dict[bytes, _Queued]] = {}
        self._txns: dict[tuple[str, bytes], tuple[bytes, int]] = {}
        self._nonces: dict[tuple[str, bytes], int] = {}
        # fan-out records: (mailbox, eid) -> identity of the one shared body object
        self._shared: dict[tuple[bytes, bytes], int] = {}
        self._legs: dict[bytes, LegRecord] = {}  # call legs (``memory_calllegs``)
        self._group_tokens: dict[str, set[bytes]] = {}  # (``memory_grouptokens``)
        self._placement = PlacementTable()  # (``local_placement``)
        self._closed = False

    async def _enter(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise StoreClosed("the store is closed")

    # --- enrollment and accounts -------------------------------------------------------
    async def add_invite(self, code_hash: bytes, name: str, expires: int) -> None:
        await self._enter()
        self._invites[code_hash] = (name, expires)

    async def register(self, code_hash: bytes, name: str, device: DeviceRecord, now: int) -> bool:
        await self._enter()
        invite = self._invites.get(code_hash)
        if invite is None or invite[0] != name or invite[1] <= now:
            return False
        if device.mailbox in self._mailboxes or any(
            address == device.address for address, _ in self._devices
        ):
            return False
        del self._invites[code_hash]
        self._devices[device.address, device.device] = device
        self._mailboxes[device.mailbox] = (device.address, device.device)
        return True

    async def device(self, address: str, device: int) -> DeviceRecord | None:
        await self._enter()
        return self._devices.get((address, device))

    async def has_account(self, name: str) -> bool:
        await self._enter()
        return any(address.partition("@")[0] == name for address, _ in self._devices)

    async def devices(self, address: str) -> list[DeviceRecord]:
        await self._enter()
        found = [d for (a, _), d in self._devices.items() if a == address]
        return sorted(found, key=lambda d: d.device)

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None:
        await self._enter()
        key = self._mailboxes.get(mailbox)
        return None if key is None else self._devices[key]

    async def set_token_verifier(self, address: str, verifier: bytes) -> None:
        await self._enter()
        self._verifiers[address] = verifier

    async def token_verifier(self, address: str) -> bytes | None:
        await self._enter()
        return self._verifiers.get(address)

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        await self._enter()
        self._introductions[address] = accept

    async def accepts_introductions(self, address: str) -> bool:
        await self._enter()
        return self._introductions.get(address, False)

    # --- prekeys -------------------------------------------------------------------------
    async def put_prekeys(self, address: str, device: int, record: PrekeyRecord) -> None:
        await self._enter()
        old = self._prekeys.get((address, device))
        new = _Prekeys(record.identity, record.signed_prekey, record.last_resort, record.sealed_key)
        if old is not None:
            new.one_time, new.kem_one_time = old.one_time, old.kem_one_time
            new.seen, new.kem_seen = old.seen, old.kem_seen
        _add_new(new.one_time, new.seen, record.one_time)
        _add_new(new.kem_one_time, new.kem_seen, record.kem_one_time)
        self._prekeys[address, device] = new

    async def take_bundle(self, address: str, device: int) -> BundleParts | None:
        await self._enter()
        keys = self._prekeys.get((address, device))
        if keys is None:
            return None
        one_time = _pop_lowest(keys.one_time)
        kem = _pop_lowest(keys.kem_one_time)
        return BundleParts(
            identity=keys.identity,
            signed_prekey=keys.signed_prekey,
            sealed_key=keys.sealed_key,
            one_time=one_time,
            kem_prekey=keys.last_resort if kem is None else kem,
            kem_last_resort=kem is None,
        )

    async def prekey_counts(self, address: str, device: int) -> tuple[int, int]:
        await self._enter()
        keys = self._prekeys.get((address, device))
        return (0, 0) if keys is None else (len(keys.one_time), len(keys.kem_one_time))

    # --- mailboxes -----------------------------------------------------------------------
    async def enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        await self._enter()
        return self._enqueue(envelope)

    def _enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        existing = self._queues.get(envelope.mailbox, {}).get(envelope.eid)
        if existing is not None:
            return False, existing.seq
        if (envelope.mailbox, envelope.eid) in self._tombstones:
            return False, 0
        self._seq += 1
        queue = self._queues.setdefault(envelope.mailbox, {})
        queue[envelope.eid] = dataclasses.replace(envelope, seq=self._seq)
        return True, self._seq

    async def enqueue_shared(
        self, body: bytes, envelopes: list[StoredEnvelope]
    ) -> list[tuple[bool, int]]:
        results = []
        for env in envelopes:  # every record refers to the one ``body`` object
            results.append(await self.enqueue(dataclasses.replace(env, body=body)))
            if results[-1][0]:
                self._shared[(env.mailbox, env.eid)] = id(body)
        return results

    async def enqueue_shared_many(
        self, items: list[tuple[bytes, list[StoredEnvelope]]]
    ) -> list[list[tuple[bool, int]]]:
        return [await self.enqueue_shared(body, envelopes) for body, envelopes in items]

    async def enqueue_many(self, envelopes: list[StoredEnvelope]) -> list[tuple[bool, int]]:
        await self._enter()
        return [self._enqueue(envelope) for envelope in envelopes]

    async def pending(
        self, mailbox: bytes, after_seq: int, limit: int, now: int
    ) -> list[StoredEnvelope]:
        await self._enter()
        out: list[StoredEnvelope] = []
        for env in self._queues.get(mailbox, {}).values():
            if len(out) >= limit:
                break
            if env.seq > after_seq and env.expires > now:
                out.append(env)
        return out

    async def count_pending(self, mailbox: bytes, now: int) -> int:
        await self._enter()
        return sum(1 for e in self._queues.get(mailbox, {}).values() if e.expires > now)

    async def ack(self, mailbox: bytes, eids: list[bytes]) -> int:
        await self._enter()
        queue = self._queues.get(mailbox, {})
        deleted = 0
        for eid in eids:
            self._shared.pop((mailbox, eid), None)
            env = queue.pop(eid, None)
            if env is not None:
                self._tombstones[mailbox, eid] = env.expires
                deleted += 1
        if not queue:
            self._queues.pop(mailbox, None)
        return deleted

    # --- blobs ---------------------------------------------------------------------------
    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        await self._enter()
        self._blobs[blob] = _Blob(token_hash, size, expires)

    async def blob_grant(self, blob: bytes, token_hash: bytes, now: int) -> int | None:
        await self._enter()
        grant = self._blobs.get(blob)
        if grant is None or not _grant_accepts(grant, token_hash, grant.size, now):
            return None
        return grant.size

    async def put_blob(self, blob: bytes, token_hash: bytes, data: bytes, now: int) -> bool:
        await self._enter()
        grant = self._blobs.get(blob)
        if grant is None or not _grant_accepts(grant, token_hash, len(data), now):
            return False
        grant.data = bytes(data)
        return True

    async def get_blob(self, blob: bytes, now: int) -> bytes | None:
        await self._enter()
        grant = self._blobs.get(blob)
        if grant is None or grant.expires <= now:
            return None
        return grant.data

    # --- housekeeping --------------------------------------------------------------------
    async def sweep(self, now: int) -> SweepResult:
        await self._enter()
        envelopes = 0
        for mailbox in list(self._queues):
            queue = self._queues[mailbox]
            for eid in [eid for eid, e in queue.items() if e.expires <= now]:
                del queue[eid]
                envelopes += 1
            if not queue:
                del self._queues[mailbox]
        return SweepResult(
            envelopes=envelopes,
            blobs=_drop_expired(self._blobs, lambda b: b.expires, now),
            tombstones=_drop_expired(self._tombstones, lambda t: t, now),
            invites=_drop_expired(self._invites, lambda i: i[1], now),
            outbound=self._sweep_federation(now),
        )

    def _sweep_federation(self, now: int) -> int:
        _drop_expired(self._txns, lambda t: t[1], now)
        _drop_expired(self._nonces, lambda n: n, now)
        return sum(_drop_expired(q, lambda e: e.item.expires, now) for q in self._outbound.values())

    # --- federation ------------------------------------------------------------------------
    async def outbound_put(self, item: OutboundItem) -> bool:
        await self._enter()
        queue = self._outbound.setdefault(item.domain, {})
        if item.eid in queue:
            return False
        queue[item.eid] = _Queued(item)
        return True

    async def outbound_batch(
        self,
        domain: str,
        txn: bytes,
        limit: int,
        max_bytes: int,
        now: int,
        busy: Collection[bytes] = (),
    ) -> tuple[bytes, list[OutboundItem]]:
        await self._enter()
        queue = self._outbound.get(domain, {})
        _drop_expired(queue, lambda e: e.item.expires, now)
        open_txn = next((e.txn for e in queue.values() if e.txn and e.txn not in busy), b"")
        if open_txn:
            return open_txn, [e.item for e in queue.values() if e.txn == open_txn]
        chosen: list[_Queued] = []
        size = 0
        for entry in queue.values():
            if entry.txn:
                continue
            if chosen and (len(chosen) >= limit or size + len(entry.item.layer) > max_bytes):
                break
            chosen.append(entry)
            size += len(entry.item.layer)
        for entry in chosen:
            entry.txn = txn
        return txn, [e.item for e in chosen]

    async def outbound_done(self, domain: str, txn: bytes, retry: list[bytes]) -> int:
        await self._enter()
        queue = self._outbound.get(domain, {})
        again = set(retry)
        done = [eid for eid, e in queue.items() if e.txn == txn and eid not in again]
        for eid in done:
            del queue[eid]
        for eid in [eid for eid, e in queue.items() if e.txn == txn]:  # the retried ones
            entry = queue.pop(eid)
            entry.txn = b""
            queue[eid] = entry  # back in the queue, at its end
        return len(done)

    async def outbound_depths(self, now: int) -> dict[str, int]:
        await self._enter()
        depths = {
            domain: sum(e.item.expires > now for e in queue.values())
            for domain, queue in self._outbound.items()
        }
        return {domain: n for domain, n in depths.items() if n}

    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        await self._enter()
        found = self._txns.get((origin, txn))
        return found[0] if found is not None else None

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None:
        await self._enter()
        self._txns[(origin, txn)] = (result, expires)

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        await self._enter()
        if (origin, nonce) in self._nonces:
            return False
        self._nonces[(origin, nonce)] = expires
        return True

    async def stats(self) -> dict[str, int]:
        await self._enter()
        uploaded = [b.data for b in self._blobs.values() if b.data is not None]
        return {
            "envelopes": sum(len(q) for q in self._queues.values()),
            "tombstones": len(self._tombstones),
            "blobs": len(uploaded),
            "blob_bytes": sum(len(d) for d in uploaded),
            "accounts": len({address for address, _ in self._devices}),
            "devices": len(self._devices),
            "invites": len(self._invites),
            "shared_bodies": len(
                {
                    body
                    for (mailbox, eid), body in self._shared.items()
                    if eid in self._queues.get(mailbox, {})
                }
            ),
        }

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self._closed = True
        self._placement.closed = True


def _add_new(keys: dict[int, bytes], seen: set[int], upload: dict[int, bytes]) -> None:
    for key_id, key in upload.items():
        if key_id not in seen:
            seen.add(key_id)
            keys[key_id] = key


def _pop_lowest(keys: dict[int, bytes]) -> bytes | None:
    return keys.pop(min(keys)) if keys else None


def _grant_accepts(grant: _Blob, token_hash: bytes, size: int, now: int) -> bool:
    return (
        grant.data is None
        and grant.expires > now
        and grant.size == size
        and hmac.compare_digest(grant.token_hash, token_hash)
    )


def _drop_expired(table: dict[_K, _V], expires: Callable[[_V], int], now: int) -> int:
    gone = [k for k, v in table.items() if expires(v) <= now]
    for k in gone:
        del table[k]
    return len(gone)
