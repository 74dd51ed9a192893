"""The node's storage interface (DESIGN section 5): one ``typing.Protocol``, three backends.

    memory   node.store.memory.MemoryStore     unit tests
    sqlite   node.store.sqlite.SqliteStore     the embedded default (WAL, group commit)
    redis    (cluster issue)                   the same calls on Redis structures

Every method is ``async`` so that a backend may wait on a disk flush or a network round
trip; a method returns only once its writes are durable in the backend's sense (for
SQLite: committed and fsynced). Each method is atomic on its own; none needs a
transaction spanning calls, which is what lets the Redis backend implement them with one
script or ``MULTI`` each.

A backend that fails (I/O error, disk full, a lock held too long) raises
``node.store.errors.StoreError``; a closed store raises ``StoreClosed``. An ordinary "no"
(a spent invite, a wrong upload token) is a return value, never an exception.

Secrets never reach storage: enrollment codes, delivery tokens and blob upload tokens are
stored as hashes made by the caller (``node.accounts``). Envelope bodies are sealed bytes
the node cannot read. Times are Unix milliseconds, chosen by the caller; a thing whose
``expires`` is at or before ``now`` has expired (it is valid while ``now < expires``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DeviceRecord:
    """A registered device: its account address, device number, encoded ``IdentityKey``
    and the random id of its mailbox."""

    address: str
    device: int
    identity: bytes
    mailbox: bytes
    created: int


@dataclass(frozen=True)
class PrekeyRecord:
    """A device's published keys, each an encoded ``wire.e2e`` message.

    ``one_time`` / ``kem_one_time`` map key ids to encoded ``OneTimePrekey`` / ``KemPrekey``.
    """

    identity: bytes
    signed_prekey: bytes
    last_resort: bytes
    sealed_key: bytes
    one_time: dict[int, bytes]
    kem_one_time: dict[int, bytes]


@dataclass(frozen=True)
class BundleParts:
    """What :meth:`Store.take_bundle` hands out: at most one of each one-time key (taken,
    so never handed out again) and the standing keys."""

    identity: bytes
    signed_prekey: bytes
    sealed_key: bytes
    one_time: bytes | None
    kem_prekey: bytes  # a one-time KEM prekey, or the last-resort key when none is left
    kem_last_resort: bool


@dataclass(frozen=True)
class StoredEnvelope:
    """An envelope in a mailbox. ``seq`` increases in arrival order within the node."""

    mailbox: bytes
    eid: bytes
    seq: int
    ts: int
    expires: int
    origin: str
    sender: str | None
    body: bytes


@dataclass(frozen=True)
class OutboundItem:
    """A routing layer queued for another domain (federation): ``eid`` is the sender's
    envelope id, ``expires`` its TTL end (Unix ms); ``layer`` is sealed to the domain."""

    domain: str
    eid: bytes
    expires: int
    layer: bytes


@dataclass(frozen=True)
class SweepResult:
    envelopes: int
    blobs: int
    tombstones: int
    invites: int
    outbound: int = 0  # queued federation items dropped by their TTL


class Store(Protocol):
    """Everything the node keeps. Implementations: memory, SQLite (Redis later)."""

    # --- enrollment and accounts -------------------------------------------------------
    async def add_invite(self, code_hash: bytes, name: str, expires: int) -> None:
        """Record a one-time enrollment code for account ``name`` (its hash only)."""
        ...

    async def register(self, code_hash: bytes, name: str, device: DeviceRecord, now: int) -> bool:
        """Spend the invite and create the account's first device, atomically.

        False (and nothing written) if the invite is unknown, spent, expired, for another
        name, or the address (or the device's mailbox id) is taken.
        """
        ...

    async def has_account(self, name: str) -> bool:
        """Whether ``name`` (the part before ``@``) has an account: a device of any address
        ``name@...`` (a store holds one domain's accounts)."""
        ...

    async def device(self, address: str, device: int) -> DeviceRecord | None: ...

    async def devices(self, address: str) -> list[DeviceRecord]: ...

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None: ...

    async def set_token_verifier(self, address: str, verifier: bytes) -> None: ...

    async def token_verifier(self, address: str) -> bytes | None: ...

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        """Record whether ``address`` accepts introductions (first contact without a
        delivery token)."""
        ...

    async def accepts_introductions(self, address: str) -> bool:
        """Whether ``address`` accepts introductions; False if it never said."""
        ...

    # --- prekeys -------------------------------------------------------------------------
    async def put_prekeys(self, address: str, device: int, record: PrekeyRecord) -> None:
        """Replace the standing keys and add the one-time keys whose ids are new.

        "New" means never stored for this device before: an id already handed out by
        :meth:`take_bundle` is not added again, so a client re-uploading every key it still
        holds cannot make the node hand out one one-time key twice.
        """
        ...

    async def take_bundle(self, address: str, device: int) -> BundleParts | None:
        """Consume one one-time DH key and one one-time KEM key (if any) atomically.

        The lowest ids go first. Without a one-time KEM key left, ``kem_prekey`` is the
        last-resort key and ``kem_last_resort`` is True. None if the device never published.
        Concurrent calls never hand out the same one-time key.
        """
        ...

    async def prekey_counts(self, address: str, device: int) -> tuple[int, int]:
        """(one-time DH keys, one-time KEM keys) left."""
        ...

    # --- mailboxes -----------------------------------------------------------------------
    async def enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        """Store ``envelope`` durably; ``(stored, seq)``. ``stored`` is False when
        ``(mailbox, eid)`` was seen before (still stored, acked or within its tombstone's
        life): then nothing changes and ``seq`` is the original's (0 if acked).

        ``envelope.seq`` is ignored: the store assigns the next one. Seqs are never reused,
        even after the envelope holding the highest one is acked. A stored or acked
        envelope de-duplicates until :meth:`sweep` removes it (after its ``expires``).
        """
        ...

    async def enqueue_shared(
        self, body: bytes, envelopes: list[StoredEnvelope]
    ) -> list[tuple[bool, int]]:
        """Fan-out: store ``body`` once for every envelope in ``envelopes`` (each a small
        per-recipient record whose own ``body`` is ignored), atomically; ``(stored, seq)``
        per envelope as :meth:`enqueue` gives it. :meth:`pending` returns each with the
        shared body; acks, TTLs and de-duplication are per recipient. The body is deleted
        once no unacked, unexpired envelope refers to it (at the next sweep)."""
        ...

    async def enqueue_shared_many(
        self, items: list[tuple[bytes, list[StoredEnvelope]]]
    ) -> list[list[tuple[bool, int]]]:
        """:meth:`enqueue_shared` each ``(body, envelopes)`` of ``items``, in order (the
        seqs of one mailbox follow the order of ``items``); its results per item. Memory
        and SQLite store all or none (one commit); Redis runs one script per item, so a
        failure part way leaves the earlier ones stored (a retry finds them duplicates)."""
        ...

    async def enqueue_many(self, envelopes: list[StoredEnvelope]) -> list[tuple[bool, int]]:
        """:meth:`enqueue` each of ``envelopes``, in order. Memory and SQLite store all or
        none (one commit); Redis runs one script per envelope, so a failure part way leaves
        the earlier ones stored (a retry with the same eids finds them as duplicates)."""
        ...

    async def pending(
        self, mailbox: bytes, after_seq: int, limit: int, now: int
    ) -> list[StoredEnvelope]:
        """Unacked, unexpired envelopes of ``mailbox`` with ``seq > after_seq``, in order."""
        ...

    async def count_pending(self, mailbox: bytes, now: int) -> int: ...

    async def ack(self, mailbox: bytes, eids: list[bytes]) -> int:
        """Delete these envelopes of ``mailbox`` (keeping tombstones for de-duplication
        until their expiry); the number deleted."""
        ...

    # --- blobs ---------------------------------------------------------------------------
    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        """Reserve a blob id for one upload of exactly ``size`` bytes."""
        ...

    async def blob_grant(self, blob: bytes, token_hash: bytes, now: int) -> int | None:
        """The granted size if ``blob`` has an unused, unexpired grant for ``token_hash``,
        else None. A read only: the HTTP layer asks before it reads an upload's body."""
        ...

    async def put_blob(self, blob: bytes, token_hash: bytes, data: bytes, now: int) -> bool:
        """Store the upload if the grant matches, is unused and unexpired."""
        ...

    async def get_blob(self, blob: bytes, now: int) -> bytes | None: ...

    # --- federation: the durable outbound queue, per destination domain ---------------
    async def outbound_put(self, item: OutboundItem) -> bool:
        """Queue ``item``; False (nothing changes) if ``(domain, eid)`` is queued already."""
        ...

    async def outbound_batch(
        self,
        domain: str,
        txn: bytes,
        limit: int,
        max_bytes: int,
        now: int,
        busy: Collection[bytes] = (),
    ) -> tuple[bytes, list[OutboundItem]]:
        """The transaction to send to ``domain`` next, as ``(txn id, items)``.

        If a transaction is open (items given a txn id and not yet done) and its id is not
        in ``busy`` (the transactions the caller has in flight), the same id and its
        unexpired items: a retry after a restart re-sends the same transaction. Else the
        oldest unexpired items that are in no transaction, at most ``limit`` and
        ``max_bytes`` of layers (at least one), are given the id ``txn``. ``(txn, [])`` when
        there are none. (Redis: an open transaction of another replica is returned only
        once that replica has been quiet for its lease.)
        """
        ...

    async def outbound_done(self, domain: str, txn: bytes, retry: list[bytes]) -> int:
        """The destination answered transaction ``txn``: delete its items except those in
        ``retry`` (eids), which go back to the end of the queue without a txn id. The number
        deleted."""
        ...

    async def outbound_depths(self, now: int) -> dict[str, int]:
        """Unexpired queued items per domain (domains with none are left out)."""
        ...

    # --- federation: what the receiving side remembers ------------------------------------
    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        """The encoded result given to ``(origin, txn)`` before, if it is remembered."""
        ...

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None: ...

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        """True if ``nonce`` is new for ``origin`` (now kept until ``expires``); False if
        it was seen (a replayed request)."""
        ...

    # --- housekeeping --------------------------------------------------------------------
    async def sweep(self, now: int) -> SweepResult:
        """Delete expired envelopes, blobs (grants, uploaded or not), tombstones, invites,
        queued outbound items, remembered transactions and nonces; how many of each."""
        ...

    async def stats(self) -> dict[str, int]:
        """Gauges for ``/metrics``: at least ``envelopes`` (stored, unacked), ``blobs``
        (uploaded), ``accounts`` (addresses with a device), ``devices`` and
        ``shared_bodies`` (fan-out bodies held, each stored once); the backends also give
        ``tombstones``, ``blob_bytes`` and ``invites``."""
        ...

    async def aclose(self) -> None: ...
