"""Hybrid signatures: ML-DSA and a classical signature, both of which must verify.

=========  ========================  ============================  ====================
suite      post-quantum half         classical half                pre-hash ``PH``
=========  ========================  ============================  ====================
``cnsa2``  ML-DSA-87 (FIPS 204)      ECDSA P-384 with SHA-384      SHA-384
``xwing``  ML-DSA-65 (FIPS 204)      Ed25519 (RFC 8032)            SHA-256
=========  ========================  ============================  ====================

The construction is that of draft-ietf-lamps-pq-composite-sigs, sections "Prefix, Label,
and CTX", "Sign" and "Verify"::

    M'       = Prefix || Label || len(ctx) || ctx || PH(M)      (len(ctx): one byte)
    mldsaSig = ML-DSA.Sign(mldsaSK, M', ctx=Label)              (FIPS 204 Alg. 2)
    tradSig  = Trad.Sign(tradSK, M')
    sig      = mldsaSig || tradSig

with ``Prefix`` = :data:`suites.labels.SIG_COMPOSITE_PREFIX` and a per-suite ``Label``
(:data:`~suites.labels.SIG_LABEL_CNSA2`, :data:`~suites.labels.SIG_LABEL_XWING`). Unlike the
draft, the application ``ctx`` is *required* and non-empty (1..255 bytes), so every caller
names its purpose and a signature made under one context never verifies under another.

Encodings are fixed-length, so splitting a key or signature is unambiguous:

* public key = ML-DSA pk (FIPS 204 section 7.2) || classical pk, where the classical pk is
  the 97-byte uncompressed SEC1 point (P-384) or the 32-byte RFC 8032 encoding (Ed25519);
* signature = ML-DSA sig || classical sig, where ECDSA is the fixed 96-byte ``r || s``
  (each 48 bytes big-endian, ``0 < r < n``, ``0 < s <= n/2``: low-S, so the ECDSA half is
  not malleable) and Ed25519 is the 64-byte RFC 8032 signature. The draft carries ECDSA as
  DER; the fixed form here avoids DER's variable length and alternative encodings;
* private key (storage) = ML-DSA seed xi (32 bytes) || classical key (48-byte big-endian
  P-384 scalar or 32-byte Ed25519 seed). The draft's section "Serialization" uses the same
  seed-first layout, with an RFC 5915 structure for ECDSA.

Errors: a malformed or wrong-suite key raises :class:`~suites.errors.InvalidKey`; any
signature that does not verify (wrong length, either half bad, out-of-range ``r``/``s``)
raises :class:`~suites.errors.InvalidSignature`; a missing or over-long context raises
:class:`InvalidContextError`.

Loaded public keys are not cached: loading costs about 30 us against about 1 ms of
verification (ML-DSA-87 + P-384), so a cache would save about 3 %.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from suites import labels
from suites.errors import InvalidKey, InvalidSignature, SuiteError, UnknownSuite

MAX_CONTEXT_LEN: Final = 255
"""FIPS 204 and the composite draft encode ``len(ctx)`` in one byte."""

MLDSA_SEED_LEN: Final = 32
"""The FIPS 204 KeyGen seed xi (Alg. 6)."""

_P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
_P384_SCALAR_LEN: Final = 48
_P384_POINT_LEN: Final = 97
_ED25519_LEN: Final = 32
_ED25519_SIG_LEN: Final = 64

_MlDsaPrivate = mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
_MlDsaPublic = mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
_ClassicalPrivate = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_ClassicalPublic = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class InvalidContextError(SuiteError, ValueError):
    """The signing context is missing, not bytes, empty, or longer than 255 bytes."""

    code = "suite.invalid_context"


@dataclass(frozen=True)
class _Params:
    """Sizes (bytes) and algorithms of one hybrid signature suite."""

    label: bytes
    prehash: str
    mldsa_private: type[mldsa.MLDSA65PrivateKey] | type[mldsa.MLDSA87PrivateKey]
    mldsa_public: type[mldsa.MLDSA65PublicKey] | type[mldsa.MLDSA87PublicKey]
    mldsa_pk_len: int
    mldsa_sig_len: int
    ecdsa: bool
    classical_sk_len: int
    classical_pk_len: int
    classical_sig_len: int


_PARAMS: Final = {
    labels.SUITE_CNSA2: _Params(
        label=labels.SIG_LABEL_CNSA2,
        prehash="sha384",
        mldsa_private=mldsa.MLDSA87PrivateKey,
        mldsa_public=mldsa.MLDSA87PublicKey,
        mldsa_pk_len=2592,
        mldsa_sig_len=4627,
        ecdsa=True,
        classical_sk_len=_P384_SCALAR_LEN,
        classical_pk_len=_P384_POINT_LEN,
        classical_sig_len=2 * _P384_SCALAR_LEN,
    ),
    labels.SUITE_XWING: _Params(
        label=labels.SIG_LABEL_XWING,
        prehash="sha256",
        mldsa_private=mldsa.MLDSA65PrivateKey,
        mldsa_public=mldsa.MLDSA65PublicKey,
        mldsa_pk_len=1952,
        mldsa_sig_len=3309,
        ecdsa=False,
        classical_sk_len=_ED25519_LEN,
        classical_pk_len=_ED25519_LEN,
        classical_sig_len=_ED25519_SIG_LEN,
    ),
}

_ECDSA_SHA384: Final = ec.ECDSA(hashes.SHA384())


@dataclass(frozen=True, eq=False)
class SigPrivateKey:
    """A hybrid signing key of one ``suite``; ``public`` is its encoded public key.

    ``mldsa_seed`` is the 32-byte FIPS 204 seed xi, ``classical`` the 48-byte P-384 scalar
    or the 32-byte Ed25519 seed. The repr shows only the suite and a public-key prefix.
    """

    suite: str
    mldsa_seed: bytes = field(repr=False)
    classical: bytes = field(repr=False)
    public: bytes = field(repr=False)
    mldsa_key: _MlDsaPrivate = field(repr=False)
    classical_key: _ClassicalPrivate = field(repr=False)

    def __repr__(self) -> str:
        return f"SigPrivateKey(suite={self.suite!r}, public={self.public[:8].hex()}…)"


class HybridSig:
    """The hybrid signature of one suite (``"cnsa2"`` or ``"xwing"``).

    Sizes in bytes: ``public_len`` 2689 / 1984, ``signature_len`` 4723 / 3373,
    ``private_len`` 80 / 64 (cnsa2 / xwing).
    """

    def __init__(self, suite_name: str) -> None:
        if suite_name not in _PARAMS:
            raise UnknownSuite(f"no hybrid signature for suite {suite_name!r}")
        self.suite = suite_name
        self._p = _PARAMS[suite_name]
        self.public_len: int = self._p.mldsa_pk_len + self._p.classical_pk_len
        self.signature_len: int = self._p.mldsa_sig_len + self._p.classical_sig_len
        self.private_len: int = MLDSA_SEED_LEN + self._p.classical_sk_len

    # --- keys -----------------------------------------------------------------------------

    def generate(self) -> tuple[SigPrivateKey, bytes]:
        """A fresh key pair ``(sk, pk)`` from the operating system's CSPRNG.

        Both halves are generated independently, as the draft's section "Key Generation"
        requires.
        """
        if self._p.ecdsa:
            scalar = ec.generate_private_key(ec.SECP384R1()).private_numbers().private_value
            classical = scalar.to_bytes(_P384_SCALAR_LEN, "big")
        else:
            classical = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        sk = self._from_parts(os.urandom(MLDSA_SEED_LEN), classical)
        return sk, sk.public

    def private_key_from_bytes(self, data: bytes) -> SigPrivateKey:
        """Load a key stored with :meth:`private_key_bytes` (``private_len`` bytes)."""
        if not isinstance(data, bytes) or len(data) != self.private_len:
            raise InvalidKey(f"{self.suite} signing key must be {self.private_len} bytes")
        return self._from_parts(data[:MLDSA_SEED_LEN], data[MLDSA_SEED_LEN:])

    def private_key_bytes(self, sk: SigPrivateKey) -> bytes:
        """The seed encoding ``mldsa_seed || classical`` (``private_len`` bytes)."""
        self._check_private(sk)
        return sk.mldsa_seed + sk.classical

    def public_key_bytes(self, sk: SigPrivateKey) -> bytes:
        """The encoded public key (``public_len`` bytes)."""
        return self._check_private(sk).public

    def check_public(self, pk: bytes) -> None:
        """Raise :class:`InvalidKey` unless ``pk`` has the right length and a valid P-384
        point (an invalid Ed25519 point is caught by verification instead)."""
        self._load_public(pk)

    # --- sign / verify --------------------------------------------------------------------

    def sign(self, sk: SigPrivateKey, message: bytes, context: bytes) -> bytes:
        """Sign ``message`` under ``context`` (1..255 bytes); ``signature_len`` bytes."""
        key = self._check_private(sk)
        m_prime = self._representative(message, context)
        mldsa_sig = key.mldsa_key.sign(m_prime, self._p.label)
        if isinstance(key.classical_key, ec.EllipticCurvePrivateKey):
            return mldsa_sig + _ecdsa_to_fixed(key.classical_key.sign(m_prime, _ECDSA_SHA384))
        return mldsa_sig + key.classical_key.sign(m_prime)

    def verify(self, pk: bytes, message: bytes, signature: bytes, context: bytes) -> None:
        """Return if both halves verify; raise :class:`InvalidSignature` otherwise.

        A malformed ``pk`` raises :class:`InvalidKey`, a bad ``context``
        :class:`InvalidContextError`.
        """
        mldsa_pk, classical_pk = self._load_public(pk)
        m_prime = self._representative(message, context)
        if not isinstance(signature, bytes) or len(signature) != self.signature_len:
            raise InvalidSignature()
        mldsa_sig = signature[: self._p.mldsa_sig_len]
        classical_sig = signature[self._p.mldsa_sig_len :]
        try:
            mldsa_pk.verify(mldsa_sig, m_prime, self._p.label)
            if isinstance(classical_pk, ec.EllipticCurvePublicKey):
                der = _ecdsa_from_fixed(classical_sig)
                classical_pk.verify(der, m_prime, _ECDSA_SHA384)
            else:
                classical_pk.verify(classical_sig, m_prime)
        except (_CryptoInvalidSignature, ValueError):
            raise InvalidSignature() from None

    # --- internals ------------------------------------------------------------------------

    def _representative(self, message: bytes, context: bytes) -> bytes:
        """M' = Prefix || Label || len(ctx) || ctx || PH(M) (composite draft, "Sign")."""
        if not isinstance(context, bytes) or not 0 < len(context) <= MAX_CONTEXT_LEN:
            raise InvalidContextError(f"signing context must be 1..{MAX_CONTEXT_LEN} bytes")
        digest = hashlib.new(self._p.prehash, message).digest()
        return b"".join(
            (labels.SIG_COMPOSITE_PREFIX, self._p.label, bytes([len(context)]), context, digest)
        )

    def _from_parts(self, seed: bytes, classical: bytes) -> SigPrivateKey:
        mldsa_key = self._p.mldsa_private.from_seed_bytes(seed)
        classical_key = self._load_classical_private(classical)
        mldsa_pk = mldsa_key.public_key().public_bytes_raw()
        classical_pub = classical_key.public_key()
        if isinstance(classical_pub, ec.EllipticCurvePublicKey):
            classical_pk = classical_pub.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        else:
            classical_pk = classical_pub.public_bytes_raw()
        return SigPrivateKey(
            self.suite, seed, classical, mldsa_pk + classical_pk, mldsa_key, classical_key
        )

    def _load_classical_private(self, data: bytes) -> _ClassicalPrivate:
        if not self._p.ecdsa:
            return ed25519.Ed25519PrivateKey.from_private_bytes(data)
        scalar = int.from_bytes(data, "big")
        if not 0 < scalar < _P384_ORDER:
            raise InvalidKey("P-384 scalar out of range")
        return ec.derive_private_key(scalar, ec.SECP384R1())

    def _check_private(self, sk: SigPrivateKey) -> SigPrivateKey:
        if not isinstance(sk, SigPrivateKey) or sk.suite != self.suite:
            raise InvalidKey(f"not a {self.suite} signing key")
        return sk

    def _load_public(self, pk: bytes) -> tuple[_MlDsaPublic, _ClassicalPublic]:
        if not isinstance(pk, bytes) or len(pk) != self.public_len:
            raise InvalidKey(f"{self.suite} signature public key must be {self.public_len} bytes")
        mldsa_part = pk[: self._p.mldsa_pk_len]
        classical_part = pk[self._p.mldsa_pk_len :]
        try:
            mldsa_pk = self._p.mldsa_public.from_public_bytes(mldsa_part)
            if not self._p.ecdsa:
                return mldsa_pk, ed25519.Ed25519PublicKey.from_public_bytes(classical_part)
            if classical_part[0] != 0x04:
                raise InvalidKey("P-384 public key must be an uncompressed point")
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), classical_part)
        except ValueError:
            raise InvalidKey(f"invalid {self.suite} signature public key") from None
        return mldsa_pk, point


def _ecdsa_to_fixed(der: bytes) -> bytes:
    """DER ECDSA signature -> fixed ``r || s`` (96 bytes), with ``s`` normalised to low-S."""
    r, s = decode_dss_signature(der)
    s = min(s, _P384_ORDER - s)
    return r.to_bytes(_P384_SCALAR_LEN, "big") + s.to_bytes(_P384_SCALAR_LEN, "big")


def _ecdsa_from_fixed(fixed: bytes) -> bytes:
    """Fixed ``r || s`` -> DER; :class:`InvalidSignature` unless ``0 < r < n``, ``0 < s <= n/2``."""
    r = int.from_bytes(fixed[:_P384_SCALAR_LEN], "big")
    s = int.from_bytes(fixed[_P384_SCALAR_LEN:], "big")
    if not (0 < r < _P384_ORDER and 0 < s <= _P384_ORDER // 2):
        raise InvalidSignature()
    return encode_dss_signature(r, s)
