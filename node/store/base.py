"""The node's storage records and rules (DESIGN section 5); the ports are in
:mod:`node.store.ports`, one ``typing.Protocol`` per concern, each with three backends.

    memory   node.store.memory.MemoryStore     unit tests
    sqlite   node.store.sqlite.SqliteStore     the embedded default (WAL, group commit)
    redis    node.store.redis.RedisStore       the same calls on Redis structures (cluster)

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

from dataclasses import dataclass


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
    """What :meth:`~node.store.ports.Prekeys.take_bundle` hands out: at most one of each
    one-time key (taken, so never handed out again) and the standing keys."""

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


@dataclass(frozen=True)
class LegRecord:
    """A call leg as other replicas see it (the ``CallLegs`` port; ``node.calls``):
    ``replica`` holds the leg (its media connection and its bridge), ``secret_hash`` is
    SHA-256 of the leg secret (never the secret), ``expires`` ends it (Unix ms) unless
    renewed, and ``claimed`` is True once a bridge has joined it."""

    leg_id: bytes
    replica: bytes
    secret_hash: bytes
    expires: int
    claimed: bool = False


@dataclass(frozen=True)
class MediaAddress:
    """Where a replica's media listener answers other replicas of its domain (the
    ``MediaPlacement`` port): a literal IP address in its canonical form (a pod IP, never a
    name) and a UDP port, 1 to 65535."""

    address: str
    port: int
