"""QUIC certificate identities and pinned keys (no Web PKI).

A node's QUIC endpoint presents a self-signed X.509 certificate over an ECDSA P-384 key
(CNSA 2.0 keeps P-384 for the classical half; qh3 signs TLS 1.3 CertificateVerify with
``ecdsa_secp384r1_sha384``, RFC 8446 section 4.2.3; qh3 leaves EdDSA out of its default
list, so Ed25519 would need a client-side override). Nothing is trusted because of who
signed the certificate: the client (or peer node) holds the expected key -- later read from
the node's signed server key document -- and compares the SHA-256 of the certificate's
SubjectPublicKeyInfo (DER) with it in constant time. TLS 1.3 CertificateVerify already
proved that the peer holds the private key of that certificate, so a matching pin
authenticates the peer.

    QuicIdentity.generate()      a fresh P-384 key and self-signed certificate (per node)
    QuicIdentity.from_pem(...)   load a persisted one
    PinnedKey.of(public_key)     the pin a peer checks; ``from_sha256`` for a stored digest
    pin.check(certificate_der)   raise ``PeerKeyMismatch`` unless the key matches
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transport.errors import PeerKeyMismatch
from trust.limits import QUIC_PIN_SIZE

PIN_SIZE: Final = QUIC_PIN_SIZE
"""Bytes of a pin: SHA-256 of the DER SubjectPublicKeyInfo."""

CERT_COMMON_NAME: Final = "sealrelay-quic"
"""Subject of the self-signed certificate; informational only (pins, not names, decide)."""

CERT_LIFETIME: Final = datetime.timedelta(days=3650)
CERT_BACKDATE: Final = datetime.timedelta(days=1)
"""Validity window. qh3 does not check it under ``CERT_NONE``; the pin is what is trusted."""

_CURVE: Final = ec.SECP384R1()


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the key's DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7), 32 bytes."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


@dataclass(frozen=True)
class PinnedKey:
    """The expected certificate key of a peer, as the 32-byte SHA-256 of its SPKI."""

    sha256: bytes

    def __post_init__(self) -> None:
        if len(self.sha256) != PIN_SIZE:
            raise ValueError(f"a pin is {PIN_SIZE} bytes, got {len(self.sha256)}")

    @classmethod
    def of(cls, public_key: ec.EllipticCurvePublicKey) -> PinnedKey:
        return cls(spki_sha256(public_key))

    @classmethod
    def from_sha256(cls, digest: bytes) -> PinnedKey:
        return cls(bytes(digest))

    def matches(self, certificate_der: bytes) -> bool:
        """Whether the certificate's key is this pin (constant-time on the digests)."""
        try:
            key = x509.load_der_x509_certificate(certificate_der).public_key()
            der = key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except ValueError:
            return False
        return hmac.compare_digest(hashlib.sha256(der).digest(), self.sha256)

    def check(self, certificate_der: bytes | None) -> None:
        """Raise ``PeerKeyMismatch`` unless ``certificate_der`` carries the pinned key."""
        if certificate_der is None or not self.matches(certificate_der):
            raise PeerKeyMismatch("the peer's certificate key is not the pinned key")


@dataclass(frozen=True)
class QuicIdentity:
    """A P-384 private key and the self-signed certificate over it, both as PEM."""

    certificate_pem: bytes
    private_key_pem: bytes

    @classmethod
    def generate(cls, *, now: datetime.datetime | None = None) -> QuicIdentity:
        """A fresh identity; ``now`` fixes the validity window (default: the wall clock)."""
        key = ec.generate_private_key(_CURVE)
        start = (now or datetime.datetime.now(datetime.UTC)) - CERT_BACKDATE
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_COMMON_NAME)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + CERT_LIFETIME)
            .sign(key, hashes.SHA384())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), key_pem)

    @classmethod
    def from_pem(cls, certificate_pem: bytes, private_key_pem: bytes) -> QuicIdentity:
        """Load a persisted identity; the key must be P-384 and match the certificate."""
        identity = cls(certificate_pem, private_key_pem)
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _CURVE.name:
            raise ValueError("a QUIC identity key must be ECDSA P-384")
        if spki_sha256(key.public_key()) != identity.pin.sha256:
            raise ValueError("the certificate is not over this private key")
        return identity

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = x509.load_pem_x509_certificate(self.certificate_pem).public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("a QUIC identity certificate must carry an EC key")
        return key

    @property
    def pin(self) -> PinnedKey:
        """What a peer pins to authenticate this identity."""
        return PinnedKey.of(self.public_key)
