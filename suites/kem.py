"""Key encapsulation for a suite: a PQ/T hybrid KEM, and plain ML-KEM for the ratchet.

``xwing``: X-Wing = MLKEM768-X25519 (draft-connolly-cfrg-xwing-kem; HPKE KEM 0x647a).
``cnsa2``: MLKEM1024-P384 (draft-irtf-cfrg-concrete-hybrid-kems, CG framework of
draft-irtf-cfrg-hybrid-kems; HPKE KEM 0x0051 in draft-ietf-hpke-pq).

Both hybrids follow the same shape (hybrid-kems "CG framework: C2PRI combiner with a nominal
group"), differing only in their parameters:

- the decapsulation key is a 32-byte seed; ``SHAKE256(seed, 64 + Nseed_T)`` gives the ML-KEM
  ``d || z`` (``KeyGen_internal``) followed by the group seed (X25519: the 32-byte secret;
  P-384: 48 bytes, ``RandomScalar`` by rejection sampling, section "P-256 and P-384 Nominal
  Groups" of concrete-hybrid-kems);
- public key ``pk_M || pk_T``, ciphertext ``ct_M || ct_T`` (P-384 elements are 97-byte
  uncompressed SEC1 points);
- shared secret ``SHA3-256(ss_M || ss_T || ct_T || pk_T || Label)`` (:func:`c2pri_combine`).

=========  ============  ===========  =============  ==================
suite      public key    ciphertext   shared secret  label
=========  ============  ===========  =============  ==================
xwing      1216 bytes    1120 bytes   32 bytes       ``\\.//^\\``
cnsa2      1665 bytes    1665 bytes   32 bytes       ``MLKEM1024-P384``
=========  ============  ===========  =============  ==================

Note that a ``cnsa2`` public key and ciphertext have the same length; they are told apart by
where they are used, never by their size.

Primitives (ML-KEM, X25519, P-384 ECDH, SHAKE256, SHA3-256) all come from ``cryptography``;
this module is only the seed expansion and the combiner.  Private keys are
:class:`KemPrivateKey` / :class:`MlKemPrivateKey` objects tagged with their suite, so a key of
one suite handed to the other is refused with :class:`~suites.errors.InvalidKey`.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from suites import labels
from suites.dh import refuse_x25519_low_order
from suites.errors import InvalidCiphertext, InvalidKey

__all__ = [
    "HybridKem",
    "KemPrivateKey",
    "MlKem",
    "MlKemEncapsDerand",
    "MlKemPrivateKey",
    "c2pri_combine",
    "mlkem1024_p384_combine",
    "xwing_combine",
]

MlKemPrivate = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey
MlKemPublic = mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey
GroupPrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
GroupPublic = x25519.X25519PublicKey | ec.EllipticCurvePublicKey

#: ``(ek, m) -> (ct, ss)``: FIPS 203 ``ML-KEM.Encaps_internal`` with the 32-byte message ``m``
#: given, for deterministic (test-vector) encapsulation only.
MlKemEncapsDerand = Callable[[bytes, bytes], tuple[bytes, bytes]]

_P384_ORDER: Final = ec.SECP384R1.group_order
_MLKEM_SEED_LEN: Final = 64  # d || z
_MLKEM_RANDOM_LEN: Final = 32  # the message m of Encaps_internal
_HYBRID_SEED_LEN: Final = 32
_SHARED_LEN: Final = 32
PUBLIC_KEY_CACHE_SIZE: Final = 64
"""Parsed hybrid KEM public keys kept per suite (a few KiB each)."""


@dataclass(frozen=True)
class _MlKemParams:
    level: int
    public_len: int
    ciphertext_len: int
    private_cls: type[mlkem.MLKEM768PrivateKey] | type[mlkem.MLKEM1024PrivateKey]
    public_cls: type[mlkem.MLKEM768PublicKey] | type[mlkem.MLKEM1024PublicKey]


_MLKEM: Final = {
    768: _MlKemParams(768, 1184, 1088, mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey),
    1024: _MlKemParams(1024, 1568, 1568, mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey),
}


@dataclass(frozen=True)
class _HybridParams:
    name: str
    kem_id: int
    mlkem: _MlKemParams
    group: str  # "x25519" or "p384"
    group_elem_len: int  # Nelem
    group_seed_len: int  # Nseed (also the group's Nrandom)
    label: bytes


_HYBRIDS: Final = {
    labels.SUITE_XWING: _HybridParams(
        "MLKEM768-X25519", 0x647A, _MLKEM[768], "x25519", 32, 32, labels.XWING_COMBINER_LABEL
    ),
    labels.SUITE_CNSA2: _HybridParams(
        "MLKEM1024-P384",
        0x0051,
        _MLKEM[1024],
        "p384",
        97,
        48,
        labels.MLKEM1024_P384_COMBINER_LABEL,
    ),
}


def _shake256(data: bytes, length: int) -> bytes:
    digest = hashes.Hash(hashes.SHAKE256(digest_size=length))
    digest.update(data)
    return digest.finalize()


def _sha3_256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA3_256())
    digest.update(data)
    return digest.finalize()


def c2pri_combine(ss_pq: bytes, ss_t: bytes, ct_t: bytes, ek_t: bytes, label: bytes) -> bytes:
    """``SHA3-256(ss_PQ || ss_T || ct_T || ek_T || label)``: the C2PRI combiner of
    draft-irtf-cfrg-hybrid-kems (section "Combiners"), 32 bytes."""
    return _sha3_256(ss_pq + ss_t + ct_t + ek_t + label)


def xwing_combine(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    """The X-Wing combiner (draft-connolly-cfrg-xwing-kem, "Combiner")."""
    return c2pri_combine(ss_m, ss_x, ct_x, pk_x, labels.XWING_COMBINER_LABEL)


def mlkem1024_p384_combine(ss_m: bytes, ss_p: bytes, ct_p: bytes, pk_p: bytes) -> bytes:
    """The MLKEM1024-P384 combiner (draft-irtf-cfrg-concrete-hybrid-kems); ``ss_p`` is the
    48-byte ECDH x-coordinate, ``ct_p``/``pk_p`` 97-byte uncompressed points."""
    return c2pri_combine(ss_m, ss_p, ct_p, pk_p, labels.MLKEM1024_P384_COMBINER_LABEL)


def _group_public_bytes(key: GroupPrivate) -> bytes:
    pub = key.public_key()
    if isinstance(pub, x25519.X25519PublicKey):
        return pub.public_bytes_raw()
    return pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass(frozen=True, eq=False)
class KemPrivateKey:
    """A hybrid KEM decapsulation key of one suite.

    ``seed`` (32 bytes) is the whole key; ``mlkem_key`` and ``group_key`` are its expansion,
    cached so decapsulation does not re-derive them. ``public`` is ``pk_M || pk_T``.
    """

    suite: str
    seed: bytes = field(repr=False)
    mlkem_key: MlKemPrivate = field(repr=False)
    group_key: GroupPrivate = field(repr=False)
    public: bytes

    def __repr__(self) -> str:
        return f"KemPrivateKey(suite={self.suite!r}, public={self.public[:8].hex()}…)"


class HybridKem:
    """The hybrid KEM of suite ``suite_name`` (see the module docstring).

    Lengths in bytes: ``public_len``, ``ciphertext_len``, ``shared_len`` (32), ``seed_len`` (32,
    the private key), ``random_len`` (``Nrandom`` of deterministic encapsulation).
    """

    def __init__(self, suite_name: str) -> None:
        if suite_name not in _HYBRIDS:
            raise ValueError(f"no hybrid KEM for suite {suite_name!r}")
        self._p = p = _HYBRIDS[suite_name]
        self.suite = suite_name
        self.name = p.name
        self.kem_id = p.kem_id
        self.public_len = p.mlkem.public_len + p.group_elem_len
        self.ciphertext_len = p.mlkem.ciphertext_len + p.group_elem_len
        self.shared_len = _SHARED_LEN
        self.seed_len = _HYBRID_SEED_LEN
        self.random_len = _MLKEM_RANDOM_LEN + p.group_seed_len
        self._parsed_public = functools.lru_cache(maxsize=PUBLIC_KEY_CACHE_SIZE)(self._parse_public)

    def __repr__(self) -> str:
        return f"HybridKem({self.suite!r})"

    # --- keys ---------------------------------------------------------------------------

    def generate(self) -> KemPrivateKey:
        """A fresh key from the operating system's CSPRNG."""
        return self.private_key_from_seed(secrets.token_bytes(self.seed_len))

    def private_key_from_seed(self, seed: bytes) -> KemPrivateKey:
        """Expand a 32-byte seed (hybrid-kems ``expandDecapsKeyG``; X-Wing "Key derivation")."""
        if not isinstance(seed, bytes) or len(seed) != self.seed_len:
            raise InvalidKey(f"{self.name} private key seed must be {self.seed_len} bytes")
        expanded = _shake256(seed, _MLKEM_SEED_LEN + self._p.group_seed_len)
        mlkem_key = self._p.mlkem.private_cls.from_seed_bytes(expanded[:_MLKEM_SEED_LEN])
        group_key = self._group_key_from_seed(expanded[_MLKEM_SEED_LEN:])
        public = mlkem_key.public_key().public_bytes_raw() + _group_public_bytes(group_key)
        return KemPrivateKey(self.suite, seed, mlkem_key, group_key, public)

    def derive_key_pair(self, ikm: bytes) -> KemPrivateKey:
        """HPKE ``DeriveKeyPair`` of draft-ietf-hpke-pq, section "Hybrid KEMs with ECDH and
        ML-KEM": ``seed = SHAKE256.LabeledDerive(ikm, "DeriveKeyPair", "", 32)`` with
        ``suite_id = "KEM" || I2OSP(kem_id, 2)`` (draft-ietf-hpke-hpke single-stage KDF)."""
        suite_id = labels.HPKE_KEM_PREFIX + self.kem_id.to_bytes(2, "big")
        label = labels.HPKE_LABEL_DERIVE_KEY_PAIR
        labeled_ikm = (
            ikm
            + labels.HPKE_VERSION_LABEL
            + suite_id
            + len(label).to_bytes(2, "big")
            + label
            + self.seed_len.to_bytes(2, "big")
        )
        return self.private_key_from_seed(_shake256(labeled_ikm, self.seed_len))

    def private_key_bytes(self, sk: KemPrivateKey) -> bytes:
        """The 32-byte seed, the key's only serialisation."""
        return self._check(sk).seed

    def public_key_bytes(self, sk: KemPrivateKey) -> bytes:
        """``pk_M || pk_T`` (``public_len`` bytes)."""
        return self._check(sk).public

    def check_public(self, pk: bytes) -> None:
        """Raise :class:`InvalidKey` unless ``pk`` is a valid public key of this KEM
        (exact length, FIPS 203 modulus check, point on the curve, X25519 not of low
        order)."""
        self._load_public(pk)

    # --- encapsulation ------------------------------------------------------------------

    def encapsulate(self, pk: bytes) -> tuple[bytes, bytes]:
        """``(ct, ss)``: a fresh ``ciphertext_len``-byte ciphertext and its 32-byte secret."""
        pk_m, pk_t = self._load_public(pk)
        ss_m, ct_m = pk_m.encapsulate()
        eph = self._fresh_group_key()
        return self._finish_encapsulation(pk, pk_t, ct_m, ss_m, eph)

    def encapsulate_derand(
        self, pk: bytes, randomness: bytes, mlkem_encaps: MlKemEncapsDerand
    ) -> tuple[bytes, bytes]:
        """Deterministic encapsulation (hybrid-kems "EncapsDerand", X-Wing "Derandomized"),
        for test vectors only: ``randomness`` is ``random_len`` bytes, the first 32 the ML-KEM
        message ``m`` (passed to ``mlkem_encaps``), the rest the group's ephemeral seed."""
        if len(randomness) != self.random_len:
            raise ValueError(f"{self.name} encapsulation randomness is {self.random_len} bytes")
        _, pk_t = self._load_public(pk)
        ct_m, ss_m = mlkem_encaps(pk[: self._p.mlkem.public_len], randomness[:_MLKEM_RANDOM_LEN])
        eph = self._group_key_from_seed(randomness[_MLKEM_RANDOM_LEN:])
        return self._finish_encapsulation(pk, pk_t, ct_m, ss_m, eph)

    def decapsulate(self, sk: KemPrivateKey, ct: bytes) -> bytes:
        """The 32-byte shared secret for ``ct`` (ML-KEM rejects implicitly).

        A ciphertext of the wrong length, or whose group element is invalid (not on P-384, or
        a low-order X25519 point), raises :class:`InvalidCiphertext`.
        """
        key = self._check(sk)
        if not isinstance(ct, bytes) or len(ct) != self.ciphertext_len:
            got = len(ct) if isinstance(ct, bytes) else type(ct).__name__
            raise InvalidCiphertext(
                f"{self.name} ciphertext must be {self.ciphertext_len} bytes, got {got}"
            )
        split = self._p.mlkem.ciphertext_len
        ct_m, ct_t = ct[:split], ct[split:]
        ss_m = key.mlkem_key.decapsulate(ct_m)
        try:
            ss_t = self._exchange(key.group_key, self._load_group_public(ct_t))
        except InvalidKey:
            raise InvalidCiphertext(f"invalid {self._p.group} element in ciphertext") from None
        return c2pri_combine(
            ss_m, ss_t, ct_t, key.public[self._p.mlkem.public_len :], self._p.label
        )

    # --- internals ----------------------------------------------------------------------

    def _finish_encapsulation(
        self, pk: bytes, pk_t: GroupPublic, ct_m: bytes, ss_m: bytes, eph: GroupPrivate
    ) -> tuple[bytes, bytes]:
        ct_t = _group_public_bytes(eph)
        ss_t = self._exchange(eph, pk_t)
        ek_t = pk[self._p.mlkem.public_len :]
        return ct_m + ct_t, c2pri_combine(ss_m, ss_t, ct_t, ek_t, self._p.label)

    def _group_key_from_seed(self, seed: bytes) -> GroupPrivate:
        if self._p.group == "x25519":
            return x25519.X25519PrivateKey.from_private_bytes(seed)
        # RandomScalar with Nseed == Nscalar == 48: a single try, failing with p < 2^-192.
        scalar = int.from_bytes(seed, "big")
        if not 0 < scalar < _P384_ORDER:
            raise InvalidKey("seed does not give a P-384 scalar (probability < 2^-192)")
        return ec.derive_private_key(scalar, ec.SECP384R1())

    def _fresh_group_key(self) -> GroupPrivate:
        if self._p.group == "x25519":
            return x25519.X25519PrivateKey.generate()
        return ec.generate_private_key(ec.SECP384R1())

    def _exchange(self, key: GroupPrivate, peer: GroupPublic) -> bytes:
        try:
            if isinstance(key, x25519.X25519PrivateKey) and isinstance(
                peer, x25519.X25519PublicKey
            ):
                return key.exchange(peer)
            if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
                peer, ec.EllipticCurvePublicKey
            ):
                return key.exchange(ec.ECDH(), peer)
        except ValueError:
            pass
        raise InvalidKey(f"{self._p.group} exchange gave an invalid result")

    def _load_group_public(self, data: bytes) -> GroupPublic:
        if self._p.group == "x25519":
            point = x25519.X25519PublicKey.from_public_bytes(data)
            refuse_x25519_low_order(point)
            return point
        if data[:1] != b"\x04":
            raise InvalidKey("P-384 element must be an uncompressed point")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), data)
        except ValueError:
            raise InvalidKey("P-384 element is not a point on the curve") from None

    def _load_public(self, pk: bytes) -> tuple[MlKemPublic, GroupPublic]:
        """The parsed halves of ``pk``. The last ``PUBLIC_KEY_CACHE_SIZE`` valid keys stay
        parsed, since a sealed-sender key is used for every message to its device (the
        parsed objects are immutable; an invalid key is never cached)."""
        if not isinstance(pk, bytes) or len(pk) != self.public_len:
            raise InvalidKey(f"{self.name} public key must be {self.public_len} bytes")
        return self._parsed_public(pk)

    def _parse_public(self, pk: bytes) -> tuple[MlKemPublic, GroupPublic]:
        split = self._p.mlkem.public_len
        try:
            pk_m = self._p.mlkem.public_cls.from_public_bytes(pk[:split])
        except ValueError:
            raise InvalidKey(f"invalid ML-KEM-{self._p.mlkem.level} encapsulation key") from None
        return pk_m, self._load_group_public(pk[split:])

    def _check(self, sk: KemPrivateKey) -> KemPrivateKey:
        if not isinstance(sk, KemPrivateKey) or sk.suite != self.suite:
            raise InvalidKey(f"not a {self.suite} hybrid KEM private key")
        return sk


@dataclass(frozen=True, eq=False)
class MlKemPrivateKey:
    """An ML-KEM decapsulation key of one suite: the 64-byte seed ``d || z`` and its expansion."""

    suite: str
    level: int
    seed: bytes = field(repr=False)
    key: MlKemPrivate = field(repr=False)
    public: bytes

    def __repr__(self) -> str:
        return (
            f"MlKemPrivateKey(suite={self.suite!r}, level={self.level}, "
            f"public={self.public[:8].hex()}…)"
        )


class MlKem:
    """Plain ML-KEM-768 or ML-KEM-1024 (FIPS 203) for the ratchet's KEM steps.

    Lengths in bytes: ``public_len`` (1184/1568), ``ciphertext_len`` (1088/1568),
    ``shared_len`` (32), ``seed_len`` (64, the private key ``d || z``).
    """

    def __init__(self, suite_name: str, level: int) -> None:
        if level not in _MLKEM:
            raise ValueError(f"unsupported ML-KEM level {level!r}")
        self._p = _MLKEM[level]
        self.suite = suite_name
        self.level = level
        self.name = f"ML-KEM-{level}"
        self.public_len = self._p.public_len
        self.ciphertext_len = self._p.ciphertext_len
        self.shared_len = _SHARED_LEN
        self.seed_len = _MLKEM_SEED_LEN

    def __repr__(self) -> str:
        return f"MlKem({self.suite!r}, {self.level})"

    def generate(self) -> MlKemPrivateKey:
        """A fresh key from the operating system's CSPRNG (FIPS 203 ML-KEM.KeyGen)."""
        return self._wrap(self._p.private_cls.generate())

    def private_key_from_seed(self, seed: bytes) -> MlKemPrivateKey:
        """The key ``KeyGen_internal(seed[:32], seed[32:])`` for a 64-byte seed."""
        if not isinstance(seed, bytes) or len(seed) != self.seed_len:
            raise InvalidKey(f"{self.name} private key seed must be {self.seed_len} bytes")
        return self._wrap(self._p.private_cls.from_seed_bytes(seed))

    def private_key_bytes(self, sk: MlKemPrivateKey) -> bytes:
        """The 64-byte seed."""
        return self._check(sk).seed

    def public_key_bytes(self, sk: MlKemPrivateKey) -> bytes:
        return self._check(sk).public

    def check_public(self, pk: bytes) -> None:
        """Raise :class:`InvalidKey` unless ``pk`` passes the FIPS 203 section 7.2 checks."""
        self._load_public(pk)

    def encapsulate(self, pk: bytes) -> tuple[bytes, bytes]:
        """``(ct, ss)`` for the encapsulation key ``pk``."""
        ss, ct = self._load_public(pk).encapsulate()
        return ct, ss

    def decapsulate(self, sk: MlKemPrivateKey, ct: bytes) -> bytes:
        """The 32-byte shared secret (implicit rejection for a tampered ``ct``)."""
        key = self._check(sk).key
        if not isinstance(ct, bytes) or len(ct) != self.ciphertext_len:
            got = len(ct) if isinstance(ct, bytes) else type(ct).__name__
            raise InvalidCiphertext(
                f"{self.name} ciphertext must be {self.ciphertext_len} bytes, got {got}"
            )
        return key.decapsulate(ct)

    def _wrap(self, key: MlKemPrivate) -> MlKemPrivateKey:
        public = key.public_key().public_bytes_raw()
        return MlKemPrivateKey(self.suite, self.level, key.private_bytes_raw(), key, public)

    def _load_public(self, pk: bytes) -> MlKemPublic:
        if not isinstance(pk, bytes) or len(pk) != self.public_len:
            raise InvalidKey(f"{self.name} public key must be {self.public_len} bytes")
        try:
            return self._p.public_cls.from_public_bytes(pk)
        except ValueError:
            raise InvalidKey(f"invalid {self.name} encapsulation key") from None

    def _check(self, sk: MlKemPrivateKey) -> MlKemPrivateKey:
        if not isinstance(sk, MlKemPrivateKey) or sk.suite != self.suite or sk.level != self.level:
            raise InvalidKey(f"not a {self.suite} {self.name} private key")
        return sk
