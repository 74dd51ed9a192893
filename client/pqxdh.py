"""PQXDH session setup (Signal, "The PQXDH Key Agreement Protocol", revision 3), over a suite.

Parameters per suite: curve P-384 or X25519, hash SHA-384 or SHA-256, pqkem ML-KEM-1024 or
ML-KEM-768, info ``sealrelay-pqxdh-v1`` (``labels.PQXDH_INFO``). Differences from the
specification, all deliberate:

- identity keys are hybrid signature keys plus a DH key signed by them (there is no XEdDSA
  on P-384), so bundle signatures are ML-DSA + ECDSA/Ed25519 (see ``client.identity``);
- ``F`` is as many ``0xFF`` bytes as the curve's scalar encoding (32 or 48);
- the associated data binds the suite, both identity keys, both addresses and both device
  ids: ``AD = Hash(encode(AssociatedDataInput))``.

The key material is ``KM = DH1 || DH2 || DH3 [|| DH4] || SS`` and
``SK = HKDF(salt = 0^HashLen, IKM = F || KM, info)``, of ``HashLen`` bytes (spec section 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from client.entropy import Entropy
from client.errors import DecryptionFailed, InvalidBundle, SuiteMismatch
from client.formats import AssociatedDataInput
from client.identity import Identity, PrekeyPool, new_dh_key, verify_bundle, verify_identity
from suites import Suite, SuiteError, labels
from suites.dh import DhPrivateKey
from wire import encode
from wire.e2e import IdentityKey, PrekeyBundle


@dataclass(frozen=True, eq=False)
class InitiatorSetup:
    """Alice's result: the shared key, the AD, and what goes into her prekey messages."""

    sk: bytes
    ad: bytes
    base_key: bytes
    kem_ct: bytes
    signed_prekey_id: int
    one_time_id: int | None
    kem_id: int
    kem_last_resort: bool
    remote_ratchet_key: bytes  # Bob's signed prekey: his first ratchet key


def associated_data(
    suite: Suite,
    ik_a: IdentityKey,
    addr_a: str,
    dev_a: int,
    ik_b: IdentityKey,
    addr_b: str,
    dev_b: int,
) -> bytes:
    """``Hash(encode(AssociatedDataInput))``, initiator first."""
    ad = AssociatedDataInput(
        suite=suite.suite_id,
        ik_a=ik_a,
        ik_b=ik_b,
        addr_a=addr_a,
        dev_a=dev_a,
        addr_b=addr_b,
        dev_b=dev_b,
    )
    return suite.kdf.hash(encode(ad))


def _kdf(suite: Suite, km: bytes) -> bytes:
    f = bytes([labels.PQXDH_F_BYTE]) * suite.dh.private_len
    return suite.kdf.derive(
        f + km, bytes(suite.kdf.hash_len), labels.PQXDH_INFO, suite.kdf.hash_len
    )


def initiate(
    identity: Identity,
    own_address: str,
    own_device: int,
    bundle: PrekeyBundle,
    entropy: Entropy,
) -> InitiatorSetup:
    """Alice's side (spec section 3.3): verify the bundle, then derive SK."""
    suite = identity.suite
    verify_bundle(suite, bundle)
    ek = new_dh_key(suite, entropy)
    dh = suite.dh
    km = (
        dh.exchange(identity.dh_key, bundle.signed_prekey.public)
        + dh.exchange(ek, bundle.identity.dh)
        + dh.exchange(ek, bundle.signed_prekey.public)
    )
    if bundle.one_time is not None:
        km += dh.exchange(ek, bundle.one_time.public)
    kem_ct, ss = entropy.mlkem_encapsulate(suite.ratchet_kem, bundle.kem_prekey.public)
    ad = associated_data(
        suite,
        identity.public,
        own_address,
        own_device,
        bundle.identity,
        bundle.address,
        bundle.device,
    )
    return InitiatorSetup(
        sk=_kdf(suite, km + ss),
        ad=ad,
        base_key=dh.public_key_bytes(ek),
        kem_ct=kem_ct,
        signed_prekey_id=bundle.signed_prekey.id,
        one_time_id=bundle.one_time.id if bundle.one_time is not None else None,
        kem_id=bundle.kem_prekey.id,
        kem_last_resort=bundle.kem_prekey.last_resort,
        remote_ratchet_key=bundle.signed_prekey.public,
    )


@dataclass(frozen=True, eq=False)
class ResponderSetup:
    sk: bytes
    ad: bytes
    ratchet_key: DhPrivateKey  # Bob's signed prekey: his first ratchet key
    one_time_dh: int | None = None  # one-time prekeys used, to consume once it decrypted
    one_time_kem: int | None = None


def respond(
    pool: PrekeyPool,
    own_address: str,
    own_device: int,
    peer_identity: IdentityKey,
    peer_address: str,
    peer_device: int,
    base_key: bytes,
    signed_prekey_id: int,
    one_time_id: int | None,
    kem_id: int,
    kem_last_resort: bool,
    kem_ct: bytes,
) -> ResponderSetup:
    """Bob's side (spec section 3.4): find the prekeys Alice used and derive SK. Any
    unknown or already-used key raises :class:`DecryptionFailed`.

    The one-time prekeys are only looked up: the caller deletes the ones the result names
    (``PrekeyPool.consume``) once the first message decrypted, so anyone able to seal an
    envelope to us cannot burn them with a message that does not."""
    suite = pool.suite
    if peer_identity.suite != suite.suite_id:
        raise SuiteMismatch("prekey message of another suite")
    try:
        verify_identity(suite, peer_identity)
    except InvalidBundle:
        raise DecryptionFailed() from None
    spk = pool.signed_prekey_for(signed_prekey_id)
    opk = pool.peek_one_time_dh(one_time_id) if one_time_id is not None else None
    kem_sk = pool.peek_kem(kem_id, kem_last_resort)
    if spk is None or kem_sk is None or (one_time_id is not None and opk is None):
        raise DecryptionFailed()
    dh = suite.dh
    try:
        km = (
            dh.exchange(spk, peer_identity.dh)
            + dh.exchange(pool.identity.dh_key, base_key)
            + dh.exchange(spk, base_key)
        )
        if opk is not None:
            km += dh.exchange(opk, base_key)
        ss = suite.ratchet_kem.decapsulate(kem_sk, kem_ct)
    except SuiteError:
        raise DecryptionFailed() from None
    ad = associated_data(
        suite,
        peer_identity,
        peer_address,
        peer_device,
        pool.identity.public,
        own_address,
        own_device,
    )
    return ResponderSetup(
        sk=_kdf(suite, km + ss),
        ad=ad,
        ratchet_key=spk,
        one_time_dh=one_time_id,
        one_time_kem=None if kem_last_resort else kem_id,
    )
