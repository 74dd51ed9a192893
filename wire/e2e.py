"""End-to-end formats that clients and servers share: identity keys, prekeys and bundles,
sender certificates and sealed envelopes (DESIGN section 4).

Signatures are made over the canonical encoding of a *signing payload* message, never over
ad-hoc concatenations, and always under a context from ``suites.labels``. Field names are
wire names and are kept short where a format travels with every message.
"""

from __future__ import annotations

from typing import Annotated

from wire.schema import message
from wire.types import U8, U16, U32, U64, Bytes32, Len, MaxLen, Range

Suite = Annotated[int, Range(1, 255)]
Key = Annotated[bytes, MaxLen(8192)]
Sig = Annotated[bytes, MaxLen(8192)]
Address = Annotated[str, MaxLen(320)]
DeviceId = U32
KeyId = U32


@message("e2e.identity")
class IdentityKey:
    """A device's public identity: hybrid signing key plus DH identity key.

    ``dh_sig`` is the signing key's signature over the DH key (context
    ``CTX_IDENTITY_DH``), which binds the two halves.
    """

    suite: Suite
    sig: Key
    dh: Key
    dh_sig: Sig


@message("e2e.prekey-payload")
class PrekeyPayload:
    """What an identity signs for each prekey; the context names the kind of prekey."""

    suite: Suite
    id: KeyId
    public: Key


@message("e2e.signed-prekey")
class SignedPrekey:
    id: KeyId
    public: Key
    signature: Sig


@message("e2e.one-time-prekey")
class OneTimePrekey:
    id: KeyId
    public: Key


@message("e2e.kem-prekey")
class KemPrekey:
    """A signed ML-KEM prekey; ``last_resort`` keys are reused until replaced."""

    id: KeyId
    public: Key
    last_resort: bool
    signature: Sig


@message("e2e.sealed-key")
class SealedSenderKey:
    """The device's HPKE public key for sealed sender (the suite's hybrid KEM)."""

    id: KeyId
    public: Key
    signature: Sig


@message("e2e.prekey-upload")
class PrekeyUpload:
    """What a device publishes to its node: all its public prekeys."""

    suite: Suite
    identity: IdentityKey
    signed_prekey: SignedPrekey
    one_time: Annotated[tuple[OneTimePrekey, ...], MaxLen(200)]
    kem_one_time: Annotated[tuple[KemPrekey, ...], MaxLen(200)]
    last_resort: KemPrekey
    sealed_key: SealedSenderKey


@message("e2e.bundle")
class PrekeyBundle:
    """What an initiator fetches: one of each key; ``one_time`` may be absent."""

    suite: Suite
    address: Address
    device: DeviceId
    identity: IdentityKey
    signed_prekey: SignedPrekey
    one_time: OneTimePrekey | None
    kem_prekey: KemPrekey
    sealed_key: SealedSenderKey


@message("e2e.cert-body")
class SenderCertificateBody:
    """The signed part of a sender certificate. ``expires`` is in Unix milliseconds."""

    suite: Suite
    address: Address
    device: DeviceId
    identity: IdentityKey
    expires: U64
    key_id: Annotated[bytes, MaxLen(64)]


@message("e2e.cert")
class SenderCertificate:
    """A body signed by the home domain's server key ``body.key_id``."""

    body: SenderCertificateBody
    signature: Sig


@message("e2e.sender")
class SenderDescriptor:
    """Inside the sealed layer: who sent it. ``cert`` is the full certificate on session
    setup and whenever it changed; otherwise ``None`` and ``cert_hash`` names it."""

    a: Address
    d: DeviceId
    cert: SenderCertificate | None
    h: Bytes32


@message("e2e.sealed-content")
class SealedContent:
    """The plaintext of a sealed envelope: sender descriptor, payload kind and payload."""

    s: SenderDescriptor
    k: U8
    p: Annotated[bytes, MaxLen(1 << 22)]


@message("e2e.sealed")
class SealedEnvelope:
    """A sealed-sender envelope body before padding: suite, the recipient's sealed key id,
    and ``enc || ciphertext`` of RFC 9180 single-shot base mode."""

    v: Suite
    i: KeyId
    c: Annotated[bytes, MaxLen(1 << 22)]


@message("e2e.safety")
class SafetyNumberInput:
    """The per-party input to a safety number (version, identity encoding, address)."""

    version: U16
    identity: IdentityKey
    address: Address


DELIVERY_TOKEN_LEN = 16
DeliveryToken = Annotated[bytes, Len(DELIVERY_TOKEN_LEN)]
