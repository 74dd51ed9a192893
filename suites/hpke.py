"""HPKE: RFC 9180 key schedule and contexts over ``cryptography`` primitives.

``cryptography``'s own HPKE API cannot take associated data, so the key schedule lives here,
proved by the RFC 9180 and draft-ietf-hpke-pq test vectors.  What is implemented:

- modes base, psk, auth and auth_psk (RFC 9180 section 5.1); auth modes need a DHKEM;
- KEMs: the suites' hybrids (:class:`~suites.kem.HybridKem`: MLKEM1024-P384 0x0051, X-Wing
  0x647a, draft-ietf-hpke-pq) and DHKEM(P-256 0x0010, P-384 0x0011, P-521 0x0012, X25519
  0x0020) of RFC 9180 section 4.1 with DeriveKeyPair of section 7.1.3;
- KDFs: HKDF-SHA256/384/512 (0x0001-0x0003, the two-stage schedule of RFC 9180 section 5.1)
  and SHAKE128/SHAKE256 (0x0010/0x0011, the single-stage ``LabeledDerive`` schedule of
  draft-ietf-hpke-hpke, "CombineSecrets_OneStage");
- AEADs: AES-128-GCM 0x0001, AES-256-GCM 0x0002, ChaCha20Poly1305 0x0003, export-only 0xFFFF;
- sequence numbers (section 5.2) and the secret exporter (section 5.3).

Products use :meth:`Hpke.seal` / :meth:`Hpke.open` (single-shot base mode, ``enc || ct``)
through :meth:`Hpke.for_suite`.  :meth:`Hpke.open` raises only
:class:`~suites.errors.DecryptionFailed` for a message that fails, and
:class:`~suites.errors.InvalidCiphertext` for one too short to hold ``enc`` and a tag.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from typing import Final, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from suites import labels
from suites.aead import Aead
from suites.errors import (
    DecryptionFailed,
    InvalidCiphertext,
    InvalidKey,
    SuiteError,
    UnknownSuite,
)
from suites.kdf import Kdf
from suites.kem import HybridKem, KemPrivateKey

__all__ = [
    "DhKem",
    "DhKemPrivateKey",
    "Hpke",
    "HpkeError",
    "HpkePrivateKey",
    "RecipientContext",
    "SenderContext",
]

MODE_BASE: Final = 0x00
MODE_PSK: Final = 0x01
MODE_AUTH: Final = 0x02
MODE_AUTH_PSK: Final = 0x03

KEM_P256: Final = 0x0010
KEM_P384: Final = 0x0011
KEM_P521: Final = 0x0012
KEM_X25519: Final = 0x0020
KEM_MLKEM1024_P384: Final = 0x0051
KEM_MLKEM768_X25519: Final = 0x647A

KDF_HKDF_SHA256: Final = 0x0001
KDF_HKDF_SHA384: Final = 0x0002
KDF_HKDF_SHA512: Final = 0x0003
KDF_SHAKE128: Final = 0x0010
KDF_SHAKE256: Final = 0x0011

AEAD_AES_128_GCM: Final = 0x0001
AEAD_AES_256_GCM: Final = 0x0002
AEAD_CHACHA20_POLY1305: Final = 0x0003
AEAD_EXPORT_ONLY: Final = 0xFFFF

_SUITES: Final = {
    labels.SUITE_CNSA2: (KEM_MLKEM1024_P384, KDF_HKDF_SHA384, AEAD_AES_256_GCM),
    labels.SUITE_XWING: (KEM_MLKEM768_X25519, KDF_HKDF_SHA256, AEAD_AES_256_GCM),
}
_MAX_LABELED_LEN: Final = 0xFFFF  # L is encoded in two bytes
_PUBLIC_EXTRACT_CACHE_SIZE: Final = 32


class HpkeError(SuiteError):
    """Misuse of an HPKE context: export-only AEAD, sequence overflow, bad PSK inputs."""

    code = "suite.hpke"


def _i2osp(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


def _length_prefixed(data: bytes) -> bytes:
    return _i2osp(len(data), 2) + data


# --- KDFs --------------------------------------------------------------------------------


class _TwoStageKdf:
    """HKDF with RFC 9180 section 4 ``LabeledExtract``/``LabeledExpand``."""

    def __init__(self, kdf_id: int, hash_name: str) -> None:
        self.kdf_id = kdf_id
        self._kdf = Kdf(hash_name)
        self.nh = self._kdf.hash_len
        # psk_id_hash and info_hash of the key schedule depend on public constants only.
        self._public_extract = functools.lru_cache(maxsize=_PUBLIC_EXTRACT_CACHE_SIZE)(
            self.labeled_extract
        )

    def labeled_extract(self, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return self._kdf.extract(salt, labels.HPKE_VERSION_LABEL + suite_id + label + ikm)

    def labeled_expand(
        self, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
    ) -> bytes:
        if length == 0:
            return b""
        if length > 255 * self.nh:
            raise HpkeError(f"HKDF output limited to {255 * self.nh} bytes")
        labeled_info = _i2osp(length, 2) + labels.HPKE_VERSION_LABEL + suite_id + label + info
        return self._kdf.expand(prk, labeled_info, length)

    def combine_secrets(
        self,
        suite_id: bytes,
        mode: int,
        shared: bytes,
        info: bytes,
        psk: bytes,
        psk_id: bytes,
        nk: int,
        nn: int,
    ) -> tuple[bytes, bytes, bytes]:
        """RFC 9180 section 5.1 ``KeySchedule``: ``(key, base_nonce, exporter_secret)``."""
        psk_id_hash = self._public_extract(suite_id, b"", labels.HPKE_LABEL_PSK_ID_HASH, psk_id)
        info_hash = self._public_extract(suite_id, b"", labels.HPKE_LABEL_INFO_HASH, info)
        context = _i2osp(mode, 1) + psk_id_hash + info_hash
        secret = self.labeled_extract(suite_id, shared, labels.HPKE_LABEL_SECRET, psk)
        key = self.labeled_expand(suite_id, secret, labels.HPKE_LABEL_KEY, context, nk)
        nonce = self.labeled_expand(suite_id, secret, labels.HPKE_LABEL_BASE_NONCE, context, nn)
        exporter = self.labeled_expand(suite_id, secret, labels.HPKE_LABEL_EXP, context, self.nh)
        return key, nonce, exporter

    def export(self, suite_id: bytes, exporter_secret: bytes, context: bytes, length: int) -> bytes:
        return self.labeled_expand(
            suite_id, exporter_secret, labels.HPKE_LABEL_SEC, context, length
        )


class _OneStageKdf:
    """A SHAKE XOF with draft-ietf-hpke-hpke's single-stage ``LabeledDerive``."""

    def __init__(self, kdf_id: int, xof: type[hashes.SHAKE128] | type[hashes.SHAKE256]) -> None:
        self.kdf_id = kdf_id
        self._xof = xof
        self.nh = 32 if xof is hashes.SHAKE128 else 64

    def labeled_derive(
        self, suite_id: bytes, ikm: bytes, label: bytes, context: bytes, length: int
    ) -> bytes:
        """``Derive(ikm || "HPKE-v1" || suite_id || lp(label) || I2OSP(L, 2) || context, L)``."""
        if not 0 < length <= _MAX_LABELED_LEN:
            raise HpkeError(f"derived length must be 1..{_MAX_LABELED_LEN} bytes")
        labeled = (
            ikm
            + labels.HPKE_VERSION_LABEL
            + suite_id
            + _length_prefixed(label)
            + _i2osp(length, 2)
            + context
        )
        digest = hashes.Hash(self._xof(digest_size=length))
        digest.update(labeled)
        return digest.finalize()

    def combine_secrets(
        self,
        suite_id: bytes,
        mode: int,
        shared: bytes,
        info: bytes,
        psk: bytes,
        psk_id: bytes,
        nk: int,
        nn: int,
    ) -> tuple[bytes, bytes, bytes]:
        """draft-ietf-hpke-hpke ``CombineSecrets_OneStage``."""
        secrets_ = _length_prefixed(psk) + _length_prefixed(shared)
        context = _i2osp(mode, 1) + _length_prefixed(psk_id) + _length_prefixed(info)
        out = self.labeled_derive(
            suite_id, secrets_, labels.HPKE_LABEL_SECRET, context, nk + nn + self.nh
        )
        return out[:nk], out[nk : nk + nn], out[nk + nn :]

    def export(self, suite_id: bytes, exporter_secret: bytes, context: bytes, length: int) -> bytes:
        return self.labeled_derive(
            suite_id, exporter_secret, labels.HPKE_LABEL_SEC, context, length
        )


_HpkeKdf = _TwoStageKdf | _OneStageKdf


def _make_kdf(kdf_id: int) -> _HpkeKdf:
    if kdf_id in (KDF_HKDF_SHA256, KDF_HKDF_SHA384, KDF_HKDF_SHA512):
        return _TwoStageKdf(kdf_id, ("sha256", "sha384", "sha512")[kdf_id - 1])
    if kdf_id == KDF_SHAKE128:
        return _OneStageKdf(kdf_id, hashes.SHAKE128)
    if kdf_id == KDF_SHAKE256:
        return _OneStageKdf(kdf_id, hashes.SHAKE256)
    raise UnknownSuite(f"unsupported HPKE KDF 0x{kdf_id:04x}")


def _make_aead(aead_id: int) -> Aead | None:
    """The AEAD, or ``None`` for export-only."""
    names = {
        AEAD_AES_128_GCM: "aes-128-gcm",
        AEAD_AES_256_GCM: "aes-256-gcm",
        AEAD_CHACHA20_POLY1305: "chacha20-poly1305",
    }
    if aead_id == AEAD_EXPORT_ONLY:
        return None
    if aead_id not in names:
        raise UnknownSuite(f"unsupported HPKE AEAD 0x{aead_id:04x}")
    return Aead(names[aead_id])


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
        self._suite_id = labels.HPKE_KEM_PREFIX + _i2osp(kem_id, 2)
        self._kdf = _TwoStageKdf(0, self._p.hash_name)

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
                    _i2osp(counter, 1),
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
        return _i2osp(key.private_numbers().private_value, self._p.nsk)

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


class _HpkeKem(Protocol):
    kem_id: int
    enc_len: int
    public_len: int

    def encap(self, pk: bytes, ikm_e: bytes | None = None) -> tuple[bytes, bytes]: ...
    def decap(self, enc: bytes, sk: HpkePrivateKey) -> bytes: ...


class _HybridHpkeKem:
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


# --- contexts (RFC 9180 sections 5.2 and 5.3) ---------------------------------------------


class _Context:
    def __init__(
        self,
        suite_id: bytes,
        kdf: _HpkeKdf,
        aead: Aead | None,
        key: bytes,
        base_nonce: bytes,
        exporter_secret: bytes,
    ) -> None:
        self._suite_id = suite_id
        self._kdf = kdf
        self._aead = aead
        self.key = key
        self.base_nonce = base_nonce
        self.exporter_secret = exporter_secret
        self.seq = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(suite_id={self._suite_id.hex()}, seq={self.seq})"

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """RFC 9180 section 5.3 secret export of ``length`` bytes."""
        return self._kdf.export(self._suite_id, self.exporter_secret, exporter_context, length)

    def _next_nonce(self, aead: Aead) -> bytes:
        if self.seq >= (1 << (8 * aead.nonce_len)) - 1:
            raise HpkeError("HPKE message limit reached")
        # base_nonce XOR I2OSP(seq, Nn), as integers
        nonce = int.from_bytes(self.base_nonce, "big") ^ self.seq
        return nonce.to_bytes(aead.nonce_len, "big")

    def _cipher(self) -> Aead:
        if self._aead is None:
            raise HpkeError("export-only HPKE context cannot seal or open")
        return self._aead


class SenderContext(_Context):
    """RFC 9180 ``ContextS``: :meth:`seal` with increasing sequence numbers, and export."""

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        aead = self._cipher()
        ct = aead.seal(self.key, self._next_nonce(aead), plaintext, aad)
        self.seq += 1
        return ct


class RecipientContext(_Context):
    """RFC 9180 ``ContextR``: :meth:`open` in order; a failed open does not advance."""

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        aead = self._cipher()
        pt = aead.open(self.key, self._next_nonce(aead), ciphertext, aad)
        self.seq += 1
        return pt


# --- the HPKE suite ----------------------------------------------------------------------


class Hpke:
    """One HPKE ciphersuite ``(kem, kdf, aead)``.  ``enc_len`` is the size of ``enc``."""

    def __init__(self, kem: DhKem | _HybridHpkeKem, kdf_id: int, aead_id: int) -> None:
        self.kem: _HpkeKem = kem
        self._auth_kem = kem if isinstance(kem, DhKem) else None
        self.kem_id, self.kdf_id, self.aead_id = kem.kem_id, kdf_id, aead_id
        self._kdf = _make_kdf(kdf_id)
        self._aead = _make_aead(aead_id)
        self.enc_len = kem.enc_len
        self.tag_len = self._aead.tag_len if self._aead is not None else 0
        self.suite_id = (
            labels.HPKE_SUITE_PREFIX
            + _i2osp(kem.kem_id, 2)
            + _i2osp(kdf_id, 2)
            + _i2osp(aead_id, 2)
        )

    def __repr__(self) -> str:
        return f"Hpke(kem=0x{self.kem_id:04x}, kdf=0x{self.kdf_id:04x}, aead=0x{self.aead_id:04x})"

    @classmethod
    def for_suite(cls, suite_name: str, kem: HybridKem) -> Hpke:
        """The HPKE suite of a cipher suite (DESIGN section 3): ``cnsa2`` = (0x0051, HKDF-SHA384,
        AES-256-GCM), ``xwing`` = (0x647a, HKDF-SHA256, AES-256-GCM)."""
        if suite_name not in _SUITES or kem.suite != suite_name:
            raise UnknownSuite(f"no HPKE suite for {suite_name!r} with {kem!r}")
        _, kdf_id, aead_id = _SUITES[suite_name]
        return cls(_HybridHpkeKem(kem), kdf_id, aead_id)

    @classmethod
    def from_ids(cls, kem_id: int, kdf_id: int, aead_id: int) -> Hpke:
        """Any supported ``(kem_id, kdf_id, aead_id)`` of the registries."""
        for name, ids in _SUITES.items():
            if ids[0] == kem_id:
                return cls(_HybridHpkeKem(HybridKem(name)), kdf_id, aead_id)
        return cls(DhKem(kem_id), kdf_id, aead_id)

    # --- single shot (base mode) --------------------------------------------------------

    def seal(self, pk: bytes, info: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """``enc || ciphertext`` for the recipient public key ``pk`` (RFC 9180 section 6.1)."""
        enc, ctx = self.setup_base_s(pk, info)
        return enc + ctx.seal(aad, plaintext)

    def open(self, sk: HpkePrivateKey, info: bytes, aad: bytes, sealed: bytes) -> bytes:
        """The plaintext of ``enc || ciphertext``, or :class:`DecryptionFailed`."""
        if not isinstance(sealed, bytes) or len(sealed) < self.enc_len + self.tag_len:
            raise InvalidCiphertext(f"sealed message shorter than {self.enc_len + self.tag_len}")
        enc, ct = sealed[: self.enc_len], sealed[self.enc_len :]
        try:
            ctx = self.setup_base_r(enc, sk, info)
        except InvalidCiphertext:
            raise DecryptionFailed() from None
        return ctx.open(aad, ct)

    # --- setup (RFC 9180 section 5.1) ---------------------------------------------------

    def setup_base_s(
        self, pk: bytes, info: bytes, *, ikm_e: bytes | None = None
    ) -> tuple[bytes, SenderContext]:
        shared, enc = self.kem.encap(pk, ikm_e)
        return enc, self.sender_context(MODE_BASE, shared, info)

    def setup_base_r(self, enc: bytes, sk: HpkePrivateKey, info: bytes) -> RecipientContext:
        return self.recipient_context(MODE_BASE, self.kem.decap(enc, sk), info)

    def setup_psk_s(
        self, pk: bytes, info: bytes, psk: bytes, psk_id: bytes, *, ikm_e: bytes | None = None
    ) -> tuple[bytes, SenderContext]:
        shared, enc = self.kem.encap(pk, ikm_e)
        return enc, self.sender_context(MODE_PSK, shared, info, psk, psk_id)

    def setup_psk_r(
        self, enc: bytes, sk: HpkePrivateKey, info: bytes, psk: bytes, psk_id: bytes
    ) -> RecipientContext:
        return self.recipient_context(MODE_PSK, self.kem.decap(enc, sk), info, psk, psk_id)

    def setup_auth_s(
        self,
        pk: bytes,
        info: bytes,
        sender: DhKemPrivateKey,
        *,
        psk: bytes = b"",
        psk_id: bytes = b"",
        ikm_e: bytes | None = None,
    ) -> tuple[bytes, SenderContext]:
        """Auth mode (auth_psk when ``psk`` is given); DHKEM only."""
        shared, enc = self._dhkem().auth_encap(pk, sender, ikm_e)
        mode = MODE_AUTH_PSK if psk or psk_id else MODE_AUTH
        return enc, self.sender_context(mode, shared, info, psk, psk_id)

    def setup_auth_r(
        self,
        enc: bytes,
        sk: HpkePrivateKey,
        info: bytes,
        sender_pk: bytes,
        *,
        psk: bytes = b"",
        psk_id: bytes = b"",
    ) -> RecipientContext:
        shared = self._dhkem().auth_decap(enc, sk, sender_pk)
        mode = MODE_AUTH_PSK if psk or psk_id else MODE_AUTH
        return self.recipient_context(mode, shared, info, psk, psk_id)

    def sender_context(
        self, mode: int, shared_secret: bytes, info: bytes, psk: bytes = b"", psk_id: bytes = b""
    ) -> SenderContext:
        """``KeyScheduleS`` from a KEM shared secret (exposed for test vectors)."""
        key, nonce, exporter = self._schedule(mode, shared_secret, info, psk, psk_id)
        return SenderContext(self.suite_id, self._kdf, self._aead, key, nonce, exporter)

    def recipient_context(
        self, mode: int, shared_secret: bytes, info: bytes, psk: bytes = b"", psk_id: bytes = b""
    ) -> RecipientContext:
        """``KeyScheduleR`` from a KEM shared secret (exposed for test vectors)."""
        key, nonce, exporter = self._schedule(mode, shared_secret, info, psk, psk_id)
        return RecipientContext(self.suite_id, self._kdf, self._aead, key, nonce, exporter)

    def _schedule(
        self, mode: int, shared: bytes, info: bytes, psk: bytes, psk_id: bytes
    ) -> tuple[bytes, bytes, bytes]:
        if bool(psk) != bool(psk_id):
            raise HpkeError("psk and psk_id must both be given or both be empty")
        if bool(psk) != (mode in (MODE_PSK, MODE_AUTH_PSK)):
            raise HpkeError("a PSK is required in psk modes and refused in the others")
        nk = self._aead.key_len if self._aead is not None else 0
        nn = self._aead.nonce_len if self._aead is not None else 0
        return self._kdf.combine_secrets(self.suite_id, mode, shared, info, psk, psk_id, nk, nn)

    def _dhkem(self) -> DhKem:
        if self._auth_kem is None:
            raise HpkeError(f"KEM 0x{self.kem_id:04x} has no authenticated mode")
        return self._auth_kem
