"""Safety numbers: a numeric fingerprint of two identity keys, compared out of band.

The construction follows the approach of Signal's ``NumericFingerprintGenerator``
(libsignal, "fingerprint"): each party's half is derived from its own identity key and
stable identifier alone, by a long chain of SHA-512 over the previous digest with the
public key appended again each round (to make finding a colliding key costly), truncated
to 30 bytes and printed as six 5-digit groups, each a 5-byte big-endian integer reduced
modulo 100000; the displayed number is both halves in sorted order, so it reads the same
on both devices. sealrelay differs in the chain's start: instead of a raw concatenation of
version, key and identifier it hashes the canonical encoding of
:class:`wire.e2e.SafetyNumberInput` (version, identity key, address), and the appended key
is the canonical encoding of the whole :class:`~wire.e2e.IdentityKey` (signing key, DH key
and the signature binding them)::

    h_0     = encode(SafetyNumberInput(version, identity, address))
    h_{i+1} = SHA-512(h_i || encode(identity))       for i < SAFETY_NUMBER_ITERATIONS
    half    = digits(h_N[:30])                        30 digits
    number  = min(half_own, half_peer) || max(...)    60 digits

:func:`identity_fingerprint` is a short hash of an identity key, for noticing that a
peer's key changed (which blocks sending until the user accepts it, DESIGN section 4).
"""

from __future__ import annotations

import hashlib
from typing import Final

from suites import labels
from wire import encode
from wire.e2e import IdentityKey, SafetyNumberInput

CHUNK_BYTES: Final = 5
CHUNK_DIGITS: Final = 5
CHUNKS_PER_PARTY: Final = 6
HALF_DIGITS: Final = CHUNK_DIGITS * CHUNKS_PER_PARTY  # 30
SAFETY_NUMBER_DIGITS: Final = 2 * HALF_DIGITS  # 60
GROUPS_PER_LINE: Final = 4

_VERSION: Final = int.from_bytes(labels.SAFETY_NUMBER_VERSION, "big")
_CHUNK_MODULUS: Final = 10**CHUNK_DIGITS


def _half(identity: IdentityKey, address: str) -> str:
    """The 30 digits one party contributes."""
    key = encode(identity)
    digest = encode(SafetyNumberInput(version=_VERSION, identity=identity, address=address))
    for _ in range(labels.SAFETY_NUMBER_ITERATIONS):
        digest = hashlib.sha512(digest + key).digest()
    chunks = (
        int.from_bytes(digest[i : i + CHUNK_BYTES], "big") % _CHUNK_MODULUS
        for i in range(0, CHUNKS_PER_PARTY * CHUNK_BYTES, CHUNK_BYTES)
    )
    return "".join(f"{chunk:0{CHUNK_DIGITS}d}" for chunk in chunks)


def safety_number(
    own_identity: IdentityKey, own_address: str, peer_identity: IdentityKey, peer_address: str
) -> str:
    """The 60-digit safety number of a conversation; the same on both sides."""
    halves = sorted((_half(own_identity, own_address), _half(peer_identity, peer_address)))
    return "".join(halves)


def format_safety_number(number: str) -> str:
    """``number`` in groups of five digits, four groups per line (three lines)."""
    if len(number) != SAFETY_NUMBER_DIGITS or not (number.isascii() and number.isdigit()):
        raise ValueError(f"a safety number has {SAFETY_NUMBER_DIGITS} digits")
    groups = [number[i : i + CHUNK_DIGITS] for i in range(0, len(number), CHUNK_DIGITS)]
    lines = (
        " ".join(groups[i : i + GROUPS_PER_LINE]) for i in range(0, len(groups), GROUPS_PER_LINE)
    )
    return "\n".join(lines)


def identity_fingerprint(identity: IdentityKey) -> bytes:
    """SHA-256 of the identity key's canonical encoding (32 bytes)."""
    return hashlib.sha256(encode(identity)).digest()
