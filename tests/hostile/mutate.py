"""Byte surgery on valid objects: the halves of hybrid keys, signatures and ciphertexts,
invalid curve points, and frames re-encoded with a field the schema forbids.

The layouts are those documented in ``suites.sig`` and ``suites.kem``: a hybrid public key
or signature is the ML-DSA part followed by the classical part; a hybrid KEM public key or
ciphertext is the ML-KEM part followed by the group element. Only the classical sizes are
written here; the post-quantum size is what is left.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from suites import Suite, labels
from wire import encode

CLASSICAL_SIG_PK: Final = {labels.SUITE_CNSA2: 97, labels.SUITE_XWING: 32}
CLASSICAL_SIG: Final = {labels.SUITE_CNSA2: 96, labels.SUITE_XWING: 64}
GROUP_ELEMENT: Final = {labels.SUITE_CNSA2: 97, labels.SUITE_XWING: 32}

X25519_ORDER_8: Final = bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
)
"""A point of order 8 on Curve25519 (u-coordinate, little-endian)."""
X25519_P_MINUS_1: Final = bytes.fromhex(
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
)
"""u = p - 1, the point of order 2 (a valid encoding of a low-order point)."""


def _split(data: bytes, classical: int) -> tuple[bytes, bytes]:
    return data[:-classical], data[-classical:]


def strip_pq_sig_key(suite: Suite, pk: bytes) -> bytes:
    """The classical half alone of a hybrid signature public key."""
    return _split(pk, CLASSICAL_SIG_PK[suite.name])[1]


def zero_pq_sig_key(suite: Suite, pk: bytes) -> bytes:
    pq, classical = _split(pk, CLASSICAL_SIG_PK[suite.name])
    return bytes(len(pq)) + classical


def strip_pq_sig(suite: Suite, sig: bytes) -> bytes:
    """The classical half alone of a hybrid signature."""
    return _split(sig, CLASSICAL_SIG[suite.name])[1]


def zero_pq_sig(suite: Suite, sig: bytes) -> bytes:
    pq, classical = _split(sig, CLASSICAL_SIG[suite.name])
    return bytes(len(pq)) + classical


def strip_pq_kem(suite: Suite, data: bytes) -> bytes:
    """The group element alone of a hybrid KEM public key or ciphertext."""
    return _split(data, GROUP_ELEMENT[suite.name])[1]


def zero_pq_kem(suite: Suite, data: bytes) -> bytes:
    pq, group = _split(data, GROUP_ELEMENT[suite.name])
    return bytes(len(pq)) + group


def off_curve(point: bytes) -> bytes:
    """A 97-byte uncompressed P-384 point moved off the curve (y changed by one bit)."""
    assert len(point) == 97
    assert point[0] == 4
    return point[:-1] + bytes([point[-1] ^ 1])


def bad_group_element(suite: Suite, data: bytes) -> bytes:
    """``data`` (a key or ciphertext ending in a group element) with that element replaced
    by an invalid one: a low-order X25519 point (xwing) or an off-curve P-384 point (cnsa2)."""
    head, element = _split(data, GROUP_ELEMENT[suite.name])
    if suite.name == labels.SUITE_XWING:
        return head + X25519_ORDER_8
    return head + off_curve(element)


def bad_sig_classical_key(suite: Suite, pk: bytes) -> bytes:
    """A hybrid signature public key whose classical half is an invalid point (off-curve
    P-384; for Ed25519, a small-order point)."""
    pq, classical = _split(pk, CLASSICAL_SIG_PK[suite.name])
    if suite.name == labels.SUITE_XWING:
        return pq + bytes([1]) + bytes(31)  # the Ed25519 identity point, of order 1
    return pq + off_curve(classical)


def raw(msg: object) -> list[Any]:
    """A message as its msgpack value ``[tag, version, fields]`` (to be edited)."""
    value = msgpack.unpackb(encode(msg), raw=False)
    assert isinstance(value, list)
    return value


def pack(value: object) -> bytes:
    """Canonical msgpack of an edited value (shortest forms, bytes as bin)."""
    data = msgpack.packb(value, use_bin_type=True)
    assert isinstance(data, bytes)
    return data


def with_field(msg: object, path: tuple[str, ...], value: object) -> bytes:
    """``msg`` encoded with the field at ``path`` (nested message fields) set to ``value``,
    whatever the schema says of it."""
    top = raw(msg)
    node = top
    for name in path[:-1]:
        node = node[2][name]
    node[2][path[-1]] = value
    return pack(top)
