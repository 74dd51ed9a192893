"""An agency's offline root key: SLH-DSA-SHA2-256s (FIPS 205), from ``pqcrypto``.

The root key certifies a domain's operational signing keys (DESIGN section 6). It is kept
offline, so its slow signing (about a second) does not matter; verifying takes about a
millisecond. Hash-based, it rests on no assumption but the hash function's.

    public, secret = generate()            64-byte public key, 128-byte secret key
    signature = sign(secret, message, context)      29,792 bytes, FIPS 205 pure mode
    verify(public, message, signature, context)     raises InvalidSignature
    fingerprint(public) -> "sha256:<hex>"           what peers pin
"""

from __future__ import annotations

import hashlib
from typing import Final

from pqcrypto import InvalidSignatureError
from pqcrypto.sign import slh_dsa_sha2_256s as _slh

from suites import labels
from suites.errors import InvalidKey, InvalidSignature

ALGORITHM: Final = labels.ROOT_KEY_ALGORITHM
PUBLIC_KEY_SIZE: Final = 64
SECRET_KEY_SIZE: Final = 128
SIGNATURE_SIZE: Final = 29_792


def generate() -> tuple[bytes, bytes]:
    """A new root key pair ``(public, secret)`` from the operating system's randomness."""
    public, secret = _slh.keygen()
    return bytes(public), bytes(secret)


def sign(secret: bytes, message: bytes, context: bytes) -> bytes:
    if len(secret) != SECRET_KEY_SIZE:
        raise InvalidKey("an SLH-DSA-SHA2-256s secret key is 128 bytes")
    return bytes(_slh.sign(secret, message, context=context))


def verify(public: bytes, message: bytes, signature: bytes, context: bytes) -> None:
    """Check ``signature``; :class:`InvalidSignature` (no detail) if it does not verify."""
    if len(public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature
    try:
        _slh.verify(public, message, signature, context=context)
    except (InvalidSignatureError, ValueError):
        raise InvalidSignature from None


def fingerprint(public: bytes) -> str:
    """``sha256:`` and the hex SHA-256 of an encoded public key (a root key or a server
    verify key): the form pins take in configuration."""
    return labels.FINGERPRINT_PREFIX + hashlib.sha256(public).hexdigest()
