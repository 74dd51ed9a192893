"""Schemas of the records the client keeps in its state store (``client.persist`` writes them).

These never leave the device, so they live with the client, not in ``wire`` (which holds the
formats clients and servers share); they use the same canonical codec. Tags start with
``client.``; a change of a record's fields is a new class with the same tag and a higher
version (``wire.schema``), and ``RECORDS_VERSION`` in the store's meta namespace names the
layout as a whole.

Private keys are stored as their suite's serialisation: DH keys as ``private_key_bytes``,
ML-KEM keys as their 64-byte seed, hybrid KEM keys as their 32-byte seed, signing keys as
``private_key_bytes``. A time in seconds (the ratchet's last KEM step) is stored as its
IEEE 754 binary64 encoding, big-endian, so it reads back bit for bit.
"""

from __future__ import annotations

from typing import Annotated, Final

from client.formats import PrekeyMessage
from client.ratchet import MAX_STORED_SKIPPED
from trust.limits import MAX_DOCUMENT
from wire import U32, U64, Bytes32, Len, MaxLen, message
from wire.e2e import (
    Address,
    DeliveryToken,
    DeviceId,
    IdentityKey,
    Key,
    SealedSenderKey,
    SenderCertificate,
    Suite,
)
from wire.relay import MailboxId
from wire.server import RootKey

RECORDS_VERSION: Final = 1
"""The layout of the records below as a whole (the ``NS_META`` slot ``META_RECORDS``)."""

Float64 = Annotated[bytes, Len(8)]
Ids = Annotated[tuple[U32, ...], MaxLen(65_536)]
Url = Annotated[str, MaxLen(2048)]
Document = Annotated[bytes, MaxLen(MAX_DOCUMENT)]


@message("client.records-version")
class RecordsVersion:
    version: U32


@message("client.peer")
class PeerKey:
    """The store key of a per-peer-device record (session, certificate, contact)."""

    address: Address
    device: DeviceId


@message("client.device")
class DeviceRecord:
    """The device's own account: address, device id, identity (private halves and the
    public key exactly as published) and its current sender certificate."""

    suite: Suite
    address: Address
    device: DeviceId
    sig_key: Key
    dh_key: Key
    identity: IdentityKey
    certificate: SenderCertificate


@message("client.pool")
class PoolRecord:
    """The prekey pool's long-lived keys and bookkeeping; each one-time key and each seen
    base key is a record of its own, so consuming one rewrites nothing else."""

    signed_prekey_id: U32
    signed_prekey: Key
    sealed_key_id: U32
    sealed_key: Key
    last_resort_id: U32
    last_resort: Key
    next_id: U32
    published_dh: Ids
    published_kem: Ids


@message("client.one-time")
class OneTimeKeyRecord:
    """One one-time prekey's private half (DH key bytes or ML-KEM seed)."""

    private: Key


@message("client.skipped")
class SkippedKeyRecord:
    """A skipped message key: the chain's ratchet key, the message number, the key."""

    dh: Key
    n: U32
    mk: Key


@message("client.ratchet")
class RatchetRecord:
    """Every field of a ``RatchetState``; ``skipped`` oldest first (eviction order)."""

    suite: Suite
    ad: Key
    rk: Key
    dhs: Key
    dhr: Key | None
    cks: Key | None
    ckr: Key | None
    ns: U32
    nr: U32
    pn: U32
    kem_own: Key
    kem_peer: Key | None
    advertise: bool
    send_kc: Key | None
    send_kp: Key | None
    kem_steps: U64
    since_kem: U64
    last_kem: Float64
    skipped: Annotated[tuple[SkippedKeyRecord, ...], MaxLen(MAX_STORED_SKIPPED)]


@message("client.session")
class SessionRecord:
    """One pairwise session (``client.session.Session``)."""

    peer_identity: IdentityKey
    peer_sealed_key: SealedSenderKey | None
    state: RatchetRecord
    pending: PrekeyMessage | None
    base_key: Key
    cert_acked: Annotated[bytes, MaxLen(64)]


@message("client.trust")
class TrustRecord:
    """The identity key last seen for an address (encoded) and whether the user accepted it."""

    identity: Annotated[bytes, MaxLen(1 << 14)]
    accepted: bool


@message("client.verified")
class VerifiedRecord:
    """The identity key (encoded) of an address whose safety number the user compared."""

    identity: Annotated[bytes, MaxLen(1 << 14)]


@message("client.peer-cert")
class PeerCertRecord:
    """A peer device's sender certificate, authenticated, and its hash."""

    hash: Bytes32
    certificate: SenderCertificate


@message("client.seen")
class SeenRecord:
    """A received envelope id is kept until ``expires`` (Unix ms)."""

    expires: U64


@message("client.account-info")
class AccountInfo:
    """What the client shell needs to reach its home node.

    ``node_url`` the node's client endpoint; ``server_key_document`` the home domain's key
    document as pinned (opaque bytes, verified by the shell); ``mailbox`` this device's
    mailbox id once registered; ``delivery_token`` the account's own 16-byte token, shared
    with contacts.
    """

    node_url: Url
    server_key_document: Document
    mailbox: MailboxId | None
    delivery_token: DeliveryToken


@message("client.contact")
class Contact:
    """How to deliver to one peer device: its mailbox id and the delivery token it shared
    (``None`` until it has: the first message then goes through ``Introduce``)."""

    mailbox: MailboxId
    delivery_token: DeliveryToken | None


@message("client.home-roots")
class HomeRoots:
    """The home agency's root public keys, pinned at enrollment (empty: the home domain
    has no root, and the client talks only within it). ``client.domaintrust``."""

    roots: Annotated[tuple[RootKey, ...], MaxLen(16)]
