"""Client-to-client formats inside the sealed layer (their tags start with ``e2e.``).

These travel only between devices, never to a node in the clear, so they live with the
client; they use the same canonical codec as every other format (``wire``). Field names are
short because a ratchet header rides on every message.
"""

from __future__ import annotations

from typing import Annotated

from wire import U32, MaxLen, message
from wire.e2e import Address, DeviceId, IdentityKey, Key, SealedSenderKey, Suite

Blob = Annotated[bytes, MaxLen(1 << 22)]


@message("e2e.rh")
class RatchetHeader:
    """Double Ratchet header plus the KEM ratchet fields.

    ``dh`` sender's current ratchet DH public key; ``pn`` length of the previous sending
    chain; ``n`` message number in this chain; ``kc`` KEM ciphertext to the receiver's current
    ratchet KEM key (only in a chain that made a KEM step); ``kp`` the sender's new ratchet
    KEM public key (only when it advertises a new one).
    """

    dh: Key
    pn: U32
    n: U32
    kc: Key | None
    kp: Key | None


@message("e2e.rm")
class RatchetMessage:
    """A Double Ratchet message: header and AES-256-GCM ciphertext (AAD = AD || header)."""

    h: RatchetHeader
    c: Blob


@message("e2e.pm")
class PrekeyMessage:
    """The initiator's messages until its first reply: PQXDH parameters plus a ratchet
    message (Signal PQXDH section 3.3, "Sending the initial message"). ``sk`` is the
    initiator's signed sealed-sender key, so the responder can answer without a lookup."""

    v: Suite
    ik: IdentityKey
    ek: Key
    spk: U32
    opk: U32 | None
    kem: U32
    lr: bool
    kc: Key
    sk: SealedSenderKey
    m: RatchetMessage


@message("e2e.ad")
class AssociatedDataInput:
    """What a session's associated data binds: suite, both identities, both addresses and
    devices (initiator first). The AD is the suite hash of its encoding."""

    suite: Suite
    ik_a: IdentityKey
    ik_b: IdentityKey
    addr_a: Address
    dev_a: DeviceId
    addr_b: Address
    dev_b: DeviceId
