"""Diffie-Hellman for a suite: P-384 (``cnsa2``) or X25519 (``xwing``).

Public keys travel as bytes: 97-byte uncompressed SEC1 points for P-384, 32 bytes for X25519.
Private keys are :class:`DhPrivateKey` objects tagged with their suite, so a key of one suite
handed to the other is refused with :class:`InvalidKey`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from suites.errors import InvalidKey

_RAW = serialization.Encoding.Raw
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_RAW_PUB = serialization.PublicFormat.Raw
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


@dataclass(frozen=True, eq=False)
class DhPrivateKey:
    """A DH private key of one suite. ``public`` is its encoded public key."""

    suite: str
    key: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
    public: bytes

    def __repr__(self) -> str:
        return f"DhPrivateKey(suite={self.suite!r}, public={self.public[:8].hex()}…)"


@functools.cache
def _x25519_probe() -> x25519.X25519PrivateKey:
    """A throw-away key of this process, only ever used to test a public key's order."""
    return x25519.X25519PrivateKey.generate()


def refuse_x25519_low_order(public: x25519.X25519PublicKey) -> None:
    """Raise :class:`InvalidKey` if ``public`` is a low-order point (order 1, 2, 4 or 8,
    canonical or not). An X25519 scalar is clamped to a multiple of 8, so such a point
    gives the all-zero result, which ``cryptography`` refuses, whatever the private key:
    one probe exchange tells them apart (RFC 7748 section 6.1)."""
    try:
        _x25519_probe().exchange(public)
    except ValueError:
        raise InvalidKey("low-order X25519 public key") from None


class Dh:
    """DH over one group. ``public_len``/``private_len``/``shared_len`` are in bytes."""

    def __init__(self, suite: str, group: str) -> None:
        if group not in ("x25519", "p384"):
            raise ValueError(f"unsupported group {group!r}")
        self.suite = suite
        self.group = group
        self.public_len = 32 if group == "x25519" else 97
        self.private_len = 32 if group == "x25519" else 48
        self.shared_len = 32 if group == "x25519" else 48

    def _wrap(self, key: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey) -> DhPrivateKey:
        pub = key.public_key()
        if isinstance(pub, x25519.X25519PublicKey):
            encoded = pub.public_bytes(_RAW, _RAW_PUB)
        else:
            encoded = pub.public_bytes(_X962, _UNCOMPRESSED)
        return DhPrivateKey(self.suite, key, encoded)

    def generate(self) -> DhPrivateKey:
        """A fresh key pair from the operating system's CSPRNG."""
        if self.group == "x25519":
            return self._wrap(x25519.X25519PrivateKey.generate())
        return self._wrap(ec.generate_private_key(ec.SECP384R1()))

    def private_key_from_bytes(self, data: bytes) -> DhPrivateKey:
        """Load a private key: 32 raw bytes (X25519) or a 48-byte big-endian scalar (P-384)."""
        if len(data) != self.private_len:
            raise InvalidKey(f"{self.group} private key must be {self.private_len} bytes")
        if self.group == "x25519":
            return self._wrap(x25519.X25519PrivateKey.from_private_bytes(data))
        scalar = int.from_bytes(data, "big")
        if not 0 < scalar < _P384_ORDER:
            raise InvalidKey("P-384 scalar out of range")
        return self._wrap(ec.derive_private_key(scalar, ec.SECP384R1()))

    def private_key_bytes(self, sk: DhPrivateKey) -> bytes:
        """The encoding :meth:`private_key_from_bytes` reads."""
        key = self._check(sk)
        if isinstance(key, x25519.X25519PrivateKey):
            return key.private_bytes_raw()
        return key.private_numbers().private_value.to_bytes(48, "big")

    def public_key_bytes(self, sk: DhPrivateKey) -> bytes:
        self._check(sk)
        return sk.public

    def check_public(self, public: bytes) -> None:
        """Raise :class:`InvalidKey` unless ``public`` is a valid public key of this group:
        a P-384 point on the curve, or an X25519 point that is not of low order."""
        self._load_public(public)

    def exchange(self, sk: DhPrivateKey, public: bytes) -> bytes:
        """The shared secret (``shared_len`` bytes); refuses invalid or low-order points."""
        key = self._check(sk)
        peer = self._load_public(public)
        try:
            if isinstance(key, x25519.X25519PrivateKey) and isinstance(
                peer, x25519.X25519PublicKey
            ):
                return key.exchange(peer)
            if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
                peer, ec.EllipticCurvePublicKey
            ):
                return key.exchange(ec.ECDH(), peer)
            raise InvalidKey(f"{self.group} key types do not match")
        except ValueError:
            raise InvalidKey(f"{self.group} exchange produced an invalid result") from None

    def _check(self, sk: DhPrivateKey) -> x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey:
        if not isinstance(sk, DhPrivateKey) or sk.suite != self.suite:
            raise InvalidKey(f"not a {self.suite} DH private key")
        return sk.key

    def _load_public(self, public: bytes) -> x25519.X25519PublicKey | ec.EllipticCurvePublicKey:
        if not isinstance(public, bytes) or len(public) != self.public_len:
            raise InvalidKey(f"{self.group} public key must be {self.public_len} bytes")
        try:
            if self.group == "x25519":
                point = x25519.X25519PublicKey.from_public_bytes(public)
                refuse_x25519_low_order(point)
                return point
            if public[0] != 0x04:
                raise InvalidKey("P-384 public key must be an uncompressed point")
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), public)
        except ValueError:
            raise InvalidKey(f"invalid {self.group} public key") from None
