"""QUIC identities (P-384, self-signed) and the pins that authenticate them."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from transport import PeerKeyMismatch, PinnedKey, QuicIdentity, errors


def _der(identity: QuicIdentity) -> bytes:
    cert = x509.load_pem_x509_certificate(identity.certificate_pem)
    return cert.public_bytes(serialization.Encoding.DER)


def test_identity_is_p384_and_pins_the_spki_digest() -> None:
    identity = QuicIdentity.generate()
    assert isinstance(identity.public_key.curve, ec.SECP384R1)
    spki = identity.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.pin == PinnedKey.from_sha256(hashlib.sha256(spki).digest())
    identity.pin.check(_der(identity))


def test_from_pem_round_trips_and_rejects_a_foreign_key() -> None:
    one, two = QuicIdentity.generate(), QuicIdentity.generate()
    assert QuicIdentity.from_pem(one.certificate_pem, one.private_key_pem) == one
    with pytest.raises(ValueError, match="not over this private key"):
        QuicIdentity.from_pem(one.certificate_pem, two.private_key_pem)
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="P-384"):
        QuicIdentity.from_pem(one.certificate_pem, p256)


def test_a_pin_refuses_other_keys_and_junk() -> None:
    one, two = QuicIdentity.generate(), QuicIdentity.generate()
    for certificate in (_der(two), b"not a certificate", None):
        with pytest.raises(PeerKeyMismatch) as caught:
            one.pin.check(certificate)
        assert caught.value.code == errors.PEER_KEY_MISMATCH
    with pytest.raises(ValueError, match="32 bytes"):
        PinnedKey.from_sha256(bytes(31))
