"""The storage ports (DESIGN sections 2 and 5): one ``typing.Protocol`` per concern.

    port            methods  used by
    Accounts        10       Relay (enrollment, auth, tokens), node.accept (recipient checks)
    Prekeys          3       Relay (publish, fetch), Session (counts)
    Mailboxes        7       node.accept (the one writer), Session (pending, ack)
    Blobs            4       Relay (grants, uploads, downloads)
    OutboundQueue    4       node.fed.outbound (federation senders)
    ReplayGuard      3       node.fed.inbound (transaction de-duplication, nonces)
    Maintenance      3       the sweeper, ``/metrics``, shutdown
    CallLegs         7       the call relay's shell (``node.calls``): legs other replicas find
    GroupTokens      4       node.accept (recipient checks), Relay (``SetGroupToken``)
    MediaPlacement   7       nothing yet: the cluster's media bridging (issue 18, item 4)

A consumer names the port it needs, never the whole store. Every backend (memory, SQLite,
Redis) implements every port; :class:`Store` is that sum, what a backend factory
(``node.store.open_store``) returns, and :class:`Storage` hands it out one port per
attribute. A new feature adds a port (a Protocol here, a base of :class:`Store`, a field
of :class:`Storage`, an implementation per backend and a contract test module); it does
not widen an old one. No port has more than :data:`MAX_PORT_METHODS` methods.

The rules every method follows (async, atomic on its own, durable on return, failures as
``StoreError``, Unix-ms times chosen by the caller) are in :mod:`node.store.base`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Protocol

from node.store.base import (
    BundleParts,
    DeviceRecord,
    LegRecord,
    MediaAddress,
    OutboundItem,
    PrekeyRecord,
    StoredEnvelope,
    SweepResult,
)

MAX_PORT_METHODS: Final = 12


class Accounts(Protocol):
    """Enrollment and accounts: invites, devices, mailbox owners, delivery-token verifiers and
    whether an address accepts introductions."""

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


class Prekeys(Protocol):
    """A device's published keys and the one-time keys handed out from them."""

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


class Mailboxes(Protocol):
    """Sealed envelopes waiting for their recipient, de-duplicated by ``(mailbox, eid)``.
    Only :func:`node.accept.accept` writes them; sessions read and ack."""

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


class Blobs(Protocol):
    """Attachment uploads: a grant per blob id, then one upload of exactly its size."""

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


class OutboundQueue(Protocol):
    """Federation: the durable outbound queue, per destination domain."""

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


class ReplayGuard(Protocol):
    """Federation, the receiving side: transaction results and request nonces remembered, so
    a repeated transaction gets its first answer and a replayed request is refused."""

    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        """The encoded result given to ``(origin, txn)`` before, if it is remembered."""
        ...

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None: ...

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        """True if ``nonce`` is new for ``origin`` (now kept until ``expires``); False if
        it was seen (a replayed request)."""
        ...


class Maintenance(Protocol):
    """Housekeeping for the whole backend: the sweeper, ``/metrics`` and shutdown."""

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


class CallLegs(Protocol):
    """Call legs (DESIGN section 9; issue 17): what must outlive one replica's memory or be
    shared by the replicas of a cluster, leg id -> (the replica that holds it, the hash of
    its secret, its expiry, whether a bridge joined it). A leg's live state (its media
    connection, its bridge, its counters) is the holding replica's, in
    :class:`node.calls.CallRelay`; a replica that gets a bind or a bridge request for a leg
    it does not hold looks here for the one that does. No account address is stored."""

    async def add_leg(self, leg: LegRecord) -> bool:
        """Record a new leg; False (and nothing changes) if its id is held already."""
        ...

    async def leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        """The unexpired leg ``leg_id``, or None."""
        ...

    async def claim_leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        """Mark the unexpired leg ``leg_id`` joined by a bridge, atomically; the record as
        it was *before*: ``claimed`` False means this call claimed it, True that a bridge
        had claimed it already (nothing changes). None if unknown or expired. Two
        concurrent claims never both see ``claimed`` False."""
        ...

    async def release_leg(self, leg_id: bytes, now: int) -> bool:
        """Give back a bridge's claim on the unexpired leg ``leg_id`` (the bridge failed),
        atomically: compare-and-release, ``claimed`` True becomes False and the call says
        True; False (nothing changes) if unknown, expired or not claimed. Call it only for
        a claim of one's own (``claim_leg`` saw ``claimed`` False), once: claims exclude
        each other, so the claim given back is that one."""
        ...

    async def renew_leg(self, leg_id: bytes, replica: bytes, expires: int, now: int) -> bool:
        """The unexpired leg ``leg_id`` is now held by ``replica`` (its media connection
        bound there) until ``expires``; False (nothing changes) if unknown or expired."""
        ...

    async def delete_leg(self, leg_id: bytes) -> bool:
        """Forget the leg (hung up, ended); False if it was not there."""
        ...

    async def sweep_legs(self, now: int) -> int:
        """Delete the legs whose ``expires`` is at or before ``now``; how many."""
        ...

    async def count_legs(self, now: int) -> int:
        """Unexpired legs held, by every replica (a gauge for ``/metrics``)."""
        ...


class GroupTokens(Protocol):
    """Group delivery tokens (issue 20; docs/security.md "Group tokens"): per account, the
    verifiers (``SHA-256(DELIVERY_TOKEN_HASH_INFO || token)``, never a token) of the tokens
    its groups' states carry. A sealed envelope to a mailbox may present the account's own
    token or any live group token of the mailbox's owner. No group id is stored: the node
    cannot tell which group a token is for, nor that two accounts share a group."""

    async def put_group_token(
        self, address: str, verifier: bytes, replaces: bytes | None, limit: int
    ) -> bool:
        """Make ``verifier`` live for ``address`` and revoke ``replaces`` (if not None),
        atomically. False, and nothing changes, if ``address`` would then hold more than
        ``limit`` live verifiers. A verifier live already stays live (True)."""
        ...

    async def revoke_group_token(self, address: str, verifier: bytes) -> bool:
        """Revoke ``verifier`` of ``address``; False if it was not live."""
        ...

    async def has_group_token(self, address: str, verifier: bytes) -> bool:
        """Whether ``verifier`` is a live group token verifier of ``address``."""
        ...

    async def count_group_tokens(self, address: str) -> int:
        """How many group token verifiers of ``address`` are live."""
        ...


class MediaPlacement(Protocol):
    """Media across replicas (DESIGN sections 7 and 9; issue 18, item 4;
    docs/kubernetes.md "The leg's replica"): where each replica's media listener answers the
    other replicas of its domain, and which one replica holds each meeting room, so that
    the others can bridge their participants to it. Both expire by the caller's clock; the
    bounds (room ids of 16 bytes, literal IP addresses, ports 1..65535) and their
    :class:`~node.store.errors.PlacementInvalid` codes are in :mod:`node.store.placement`,
    checked before anything is written. No participant, account or client address is
    stored."""

    async def announce_media(
        self, replica: bytes, address: str, port: int, now: int, ttl_ms: int
    ) -> None:
        """``replica``'s media listener answers at ``address`` (a literal IP, stored in its
        canonical form) and UDP ``port`` until ``now + ttl_ms``; replaces what it announced
        before (a replica re-announces well within its TTL)."""
        ...

    async def media_address(self, replica: bytes, now: int) -> MediaAddress | None:
        """Where ``replica``'s media listener answers, if it announced it and that has not
        expired; else None."""
        ...

    async def withdraw_media(self, replica: bytes) -> bool:
        """Forget ``replica``'s media address (it is stopping); False if none was there."""
        ...

    async def place_room(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bytes:
        """Claim ``room`` for ``replica`` until ``now + ttl_ms``, atomically; the holder.

        If another replica holds ``room`` (unexpired), nothing changes and that replica is
        returned. Else ``replica`` holds it now and is returned (so a claim by the holder
        itself extends its hold, and a retried claim is harmless). Of concurrent claims on a
        free room, exactly one wins and every one returns the winner."""
        ...

    async def renew_room(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bool:
        """Extend ``replica``'s unexpired hold on ``room`` to ``now + ttl_ms``; False (and
        nothing changes) if ``room`` is free, expired or held by another replica."""
        ...

    async def release_room(self, room: bytes, replica: bytes) -> bool:
        """Free ``room`` if ``replica`` holds it; False (nothing changes) if another replica
        does or nobody does. (A hold that has expired may or may not be left to release.)"""
        ...

    async def room_holder(self, room: bytes, now: int) -> bytes | None:
        """The replica whose hold on ``room`` has not expired, or None."""
        ...


class Store(
    Accounts,
    Prekeys,
    Mailboxes,
    Blobs,
    OutboundQueue,
    ReplayGuard,
    Maintenance,
    CallLegs,
    GroupTokens,
    MediaPlacement,
    Protocol,
):
    """A backend: every port at once (``MemoryStore``, ``SqliteStore``, ``RedisStore``).
    Only what opens and closes a backend names it; consumers take a port."""


@dataclass(frozen=True, slots=True)
class Storage:
    """The ports of one backend, one attribute each: what the node hands its parts.

    Built from a backend by :meth:`of`; a backend that splits a port into an object of its
    own builds the bundle itself. Adding a port adds a field here."""

    accounts: Accounts
    prekeys: Prekeys
    mailboxes: Mailboxes
    blobs: Blobs
    outbound: OutboundQueue
    replay: ReplayGuard
    maintenance: Maintenance
    call_legs: CallLegs
    group_tokens: GroupTokens
    media_placement: MediaPlacement

    @classmethod
    def of(cls, backend: Store) -> Storage:
        """The bundle of a backend that implements every port in one object."""
        return cls(
            accounts=backend,
            prekeys=backend,
            mailboxes=backend,
            blobs=backend,
            outbound=backend,
            replay=backend,
            maintenance=backend,
            call_legs=backend,
            group_tokens=backend,
            media_placement=backend,
        )


PORTS: Final = (
    Accounts,
    Prekeys,
    Mailboxes,
    Blobs,
    OutboundQueue,
    ReplayGuard,
    Maintenance,
    CallLegs,
    GroupTokens,
    MediaPlacement,
)
