"""HPKE KEMs (RFC 9180 section 4): DHKEM(P-256 0x0010, P-384 0x0011, P-521 0x0012, X25519
0x0020) of section 4.1 with ``DeriveKeyPair`` of section 7.1.3, and the suites' hybrids
(:class:`~suites.kem.HybridKem`: MLKEM1024-P384 0x0051, X-Wing 0x647a) seen through the same
interface (draft-ietf-hpke-pq).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Final, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from suites import labels
from suites.errors import InvalidCiphertext, InvalidKey, SuiteError, UnknownSuite
from suites.hpke_schedule import (
    KEM_P256,
    KEM_P384,
    KEM_P521,
    KEM_X25519,
    HpkeError,
    TwoStageKdf,
    i2osp,
)
from suites.kem import HybridKem, KemPrivateKey

# --- DHKEM (RFC 9180 section 4.1) --------------------------------------------------------


@dataclass(frozen=True)
class _DhKemParams:
    curve: type[ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1] | None  # None: X25519
    hash_name: str
    nsecret: int
    npk: int
    nsk: int
    bitmask: int

    @property
    def order(self) -> int:
        return self.curve.group_order if self.curve is not None else 0


_DHKEMS: Final = {
    KEM_P256: _DhKemParams(ec.SECP256R1, "sha256", 32, 65, 32, 0xFF),
    KEM_P384: _DhKemParams(ec.SECP384R1, "sha384", 48, 97, 48, 0xFF),
    KEM_P521: _DhKemParams(ec.SECP521R1, "sha512", 64, 133, 66, 0x01),
    KEM_X25519: _DhKemParams(None, "sha256", 32, 32, 32, 0),
}

_DhPrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
_DhPublic = x25519.X25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, eq=False)
class DhKemPrivateKey:
    """A DHKEM private key; ``public`` is its serialised public key (``Npk`` bytes)."""

    kem_id: int
    key: _DhPrivate = field(repr=False)
    public: bytes

    def __repr__(self) -> str:
        return f"DhKemPrivateKey(kem_id=0x{self.kem_id:04x}, public={self.public[:8].hex()}…)"


class DhKem:
    """DHKEM(Group, HKDF) of RFC 9180 section 4.1, for the RFC's own test vectors and peers
    that only speak classic HPKE.  ``enc_len == public_len == Npk``, ``shared_len == Nsecret``.
    """

    def __init__(self, kem_id: int) -> None:
        if kem_id not in _DHKEMS:
            raise UnknownSuite(f"unsupported DHKEM 0x{kem_id:04x}")
        self._p = _DHKEMS[kem_id]
        self.kem_id = kem_id
        self.public_len = self.enc_len = self._p.npk
        self.private_len = self._p.nsk
        self.shared_len = self._p.nsecret
        self.order = self._p.order  # the P-curve group order DeriveKeyPair rejects at; 0: X25519
        self.supports_auth = True
        self._suite_id = labels.HPKE_KEM_PREFIX + i2osp(kem_id, 2)
        self._kdf = TwoStageKdf(0, self._p.hash_name)

    def generate(self) -> DhKemPrivateKey:
        return self.derive_key_pair(secrets.token_bytes(self._p.nsk))

    def derive_key_pair(self, ikm: bytes) -> DhKemPrivateKey:
        """RFC 9180 section 7.1.3 ``DeriveKeyPair`` (with the rejection loop for P-curves)."""
        prk = self._kdf.labeled_extract(self._suite_id, b"", labels.HPKE_LABEL_DKP_PRK, ikm)
        if self._p.curve is None:
            sk = self._kdf.labeled_expand(self._suite_id, prk, labels.HPKE_LABEL_SK, b"", 32)
            return self._wrap(x25519.X25519PrivateKey.from_private_bytes(sk))
        for counter in range(256):
            candidate = bytearray(
                self._kdf.labeled_expand(
                    self._suite_id,
                    prk,
                    labels.HPKE_LABEL_CANDIDATE,
                    i2osp(counter, 1),
                    self._p.nsk,
                )
            )
            candidate[0] &= self._p.bitmask
            scalar = int.from_bytes(candidate, "big")
            if 0 < scalar < self._p.order:
                return self._wrap(ec.derive_private_key(scalar, self._p.curve()))
        raise HpkeError("DeriveKeyPair found no valid scalar")  # pragma: no cover

    def private_key_from_bytes(self, data: bytes) -> DhKemPrivateKey:
        """RFC 9180 ``DeserializePrivateKey`` (``Nsk`` bytes)."""
        if len(data) != self._p.nsk:
            raise InvalidKey(f"DHKEM private key must be {self._p.nsk} bytes")
        if self._p.curve is None:
            return self._wrap(x25519.X25519PrivateKey.from_private_bytes(data))
        scalar = int.from_bytes(data, "big")
        if not 0 < scalar < self._p.order:
            raise InvalidKey("DHKEM scalar out of range")
        try:
            return self._wrap(ec.derive_private_key(scalar, self._p.curve()))
        except ValueError:
            raise InvalidKey("DHKEM scalar out of range") from None

    def private_key_bytes(self, sk: DhKemPrivateKey) -> bytes:
        """RFC 9180 ``SerializePrivateKey``."""
        key = self._check(sk).key
        if isinstance(key, x25519.X25519PrivateKey):
            return key.private_bytes_raw()
        return i2osp(key.private_numbers().private_value, self._p.nsk)

    def public_key_bytes(self, sk: DhKemPrivateKey) -> bytes:
        return self._check(sk).public

    def encap(self, pk: bytes, ikm_e: bytes | None = None) -> tuple[bytes, bytes]:
        """``(shared_secret, enc)``; ``ikm_e`` derives the ephemeral key (test vectors)."""
        peer = self._load(pk, InvalidKey)
        eph = self.derive_key_pair(ikm_e) if ikm_e is not None else self.generate()
        dh = self._dh(eph.key, peer, InvalidKey)
        return self._extract_and_expand(dh, eph.public + pk), eph.public

    def decap(self, enc: bytes, sk: HpkePrivateKey) -> bytes:
        key = self._check(sk)
        dh = self._dh(key.key, self._load(enc, InvalidCiphertext), InvalidCiphertext)
        return self._extract_and_expand(dh, enc + key.public)

    def auth_encap(
        self, pk: bytes, sender: DhKemPrivateKey, ikm_e: bytes | None = None
    ) -> tuple[bytes, bytes]:
        """RFC 9180 ``AuthEncap``: ``(shared_secret, enc)`` authenticated by ``sender``."""
        sk_s = self._check(sender)
        peer = self._load(pk, InvalidKey)
        eph = self.derive_key_pair(ikm_e) if ikm_e is not None else self.generate()
        dh = self._dh(eph.key, peer, InvalidKey) + self._dh(sk_s.key, peer, InvalidKey)
        return self._extract_and_expand(dh, eph.public + pk + sk_s.public), eph.public

    def auth_decap(self, enc: bytes, sk: HpkePrivateKey, sender_pk: bytes) -> bytes:
        """RFC 9180 ``AuthDecap``."""
        key = self._check(sk)
        pk_e = self._load(enc, InvalidCiphertext)
        pk_s = self._load(sender_pk, InvalidKey)
        dh = self._dh(key.key, pk_e, InvalidCiphertext) + self._dh(key.key, pk_s, InvalidKey)
        return self._extract_and_expand(dh, enc + key.public + sender_pk)

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        prk = self._kdf.labeled_extract(self._suite_id, b"", labels.HPKE_LABEL_EAE_PRK, dh)
        return self._kdf.labeled_expand(
            self._suite_id, prk, labels.HPKE_LABEL_SHARED_SECRET, kem_context, self._p.nsecret
        )

    def _wrap(self, key: _DhPrivate) -> DhKemPrivateKey:
        if isinstance(key, x25519.X25519PrivateKey):
            return DhKemPrivateKey(self.kem_id, key, key.public_key().public_bytes_raw())
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return DhKemPrivateKey(self.kem_id, key, public)

    def _load(self, data: bytes, error: type[SuiteError]) -> _DhPublic:
        if not isinstance(data, bytes) or len(data) != self._p.npk:
            raise error(f"DHKEM element must be {self._p.npk} bytes")
        if self._p.curve is None:
            return x25519.X25519PublicKey.from_public_bytes(data)
        try:
            if data[0] != 0x04:
                raise ValueError
            return ec.EllipticCurvePublicKey.from_encoded_point(self._p.curve(), data)
        except ValueError:
            raise error("DHKEM element is not a valid uncompressed point") from None

    @staticmethod
    def _dh(key: _DhPrivate, peer: _DhPublic, error: type[SuiteError]) -> bytes:
        try:
            if isinstance(key, x25519.X25519PrivateKey) and isinstance(
                peer, x25519.X25519PublicKey
            ):
                return key.exchange(peer)  # refuses the all-zero output (section 7.1.4)
            if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
                peer, ec.EllipticCurvePublicKey
            ):
                return key.exchange(ec.ECDH(), peer)
        except ValueError:
            pass
        raise error("DH produced an invalid result")

    def _check(self, sk: object) -> DhKemPrivateKey:
        if not isinstance(sk, DhKemPrivateKey) or sk.kem_id != self.kem_id:
            raise InvalidKey(f"not a DHKEM 0x{self.kem_id:04x} private key")
        return sk


HpkePrivateKey = KemPrivateKey | DhKemPrivateKey


class HpkeKem(Protocol):
    kem_id: int
    enc_len: int
    public_len: int

    def encap(self, pk: bytes, ikm_e: bytes | None = None) -> tuple[bytes, bytes]: ...
    def decap(self, enc: bytes, sk: HpkePrivateKey) -> bytes: ...


class HybridHpkeKem:
    """A :class:`~suites.kem.HybridKem` seen through the RFC 9180 KEM interface
    (draft-ietf-hpke-pq: ``Nenc = Nct``, ``Npk = Nek``, ``Nsecret = Nss``)."""

    supports_auth = False

    def __init__(self, kem: HybridKem) -> None:
        self.kem = kem
        self.kem_id = kem.kem_id
        self.enc_len = kem.ciphertext_len
        self.public_len = kem.public_len

    def encap(self, pk: bytes, ikm_e: bytes | None = None) -> tuple[bytes, bytes]:
        if ikm_e is not None:
            raise HpkeError("deterministic hybrid encapsulation: use HybridKem.encapsulate_derand")
        ct, ss = self.kem.encapsulate(pk)
        return ss, ct

    def decap(self, enc: bytes, sk: HpkePrivateKey) -> bytes:
        if not isinstance(sk, KemPrivateKey):
            raise InvalidKey(f"not a {self.kem.suite} hybrid KEM private key")
        return self.kem.decapsulate(sk, enc)
