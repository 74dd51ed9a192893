"""HPKE key schedule and contexts (RFC 9180 sections 5.1-5.3; draft-ietf-hpke-hpke for the
single-stage SHAKE schedule), and the registry identifiers of modes, KEMs, KDFs and AEADs.

``suites.hpke`` composes these with a KEM (``suites.hpke_kems``) into a ciphersuite.

- KDFs: HKDF-SHA256/384/512 (0x0001-0x0003, the two-stage schedule of RFC 9180 section 5.1)
  and SHAKE128/SHAKE256 (0x0010/0x0011, the single-stage ``LabeledDerive`` schedule of
  draft-ietf-hpke-hpke, "CombineSecrets_OneStage");
- AEADs: AES-128-GCM 0x0001, AES-256-GCM 0x0002, ChaCha20Poly1305 0x0003, export-only 0xFFFF;
- sequence numbers (section 5.2) and the secret exporter (section 5.3).
"""

from __future__ import annotations

import functools
from typing import Final

from cryptography.hazmat.primitives import hashes

from suites import labels
from suites.aead import Aead
from suites.errors import SuiteError, UnknownSuite
from suites.kdf import Kdf

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

_MAX_LABELED_LEN: Final = 0xFFFF  # L is encoded in two bytes
_PUBLIC_EXTRACT_CACHE_SIZE: Final = 32


class HpkeError(SuiteError):
    """Misuse of an HPKE context: export-only AEAD, sequence overflow, bad PSK inputs."""

    code = "suite.hpke"


def i2osp(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


def length_prefixed(data: bytes) -> bytes:
    return i2osp(len(data), 2) + data


# --- KDFs --------------------------------------------------------------------------------


class TwoStageKdf:
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
        labeled_info = i2osp(length, 2) + labels.HPKE_VERSION_LABEL + suite_id + label + info
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
        context = i2osp(mode, 1) + psk_id_hash + info_hash
        secret = self.labeled_extract(suite_id, shared, labels.HPKE_LABEL_SECRET, psk)
        key = self.labeled_expand(suite_id, secret, labels.HPKE_LABEL_KEY, context, nk)
        nonce = self.labeled_expand(suite_id, secret, labels.HPKE_LABEL_BASE_NONCE, context, nn)
        exporter = self.labeled_expand(suite_id, secret, labels.HPKE_LABEL_EXP, context, self.nh)
        return key, nonce, exporter

    def export(self, suite_id: bytes, exporter_secret: bytes, context: bytes, length: int) -> bytes:
        return self.labeled_expand(
            suite_id, exporter_secret, labels.HPKE_LABEL_SEC, context, length
        )


class OneStageKdf:
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
            + length_prefixed(label)
            + i2osp(length, 2)
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
        secrets_ = length_prefixed(psk) + length_prefixed(shared)
        context = i2osp(mode, 1) + length_prefixed(psk_id) + length_prefixed(info)
        out = self.labeled_derive(
            suite_id, secrets_, labels.HPKE_LABEL_SECRET, context, nk + nn + self.nh
        )
        return out[:nk], out[nk : nk + nn], out[nk + nn :]

    def export(self, suite_id: bytes, exporter_secret: bytes, context: bytes, length: int) -> bytes:
        return self.labeled_derive(
            suite_id, exporter_secret, labels.HPKE_LABEL_SEC, context, length
        )


HpkeKdf = TwoStageKdf | OneStageKdf


def make_kdf(kdf_id: int) -> HpkeKdf:
    if kdf_id in (KDF_HKDF_SHA256, KDF_HKDF_SHA384, KDF_HKDF_SHA512):
        return TwoStageKdf(kdf_id, ("sha256", "sha384", "sha512")[kdf_id - 1])
    if kdf_id == KDF_SHAKE128:
        return OneStageKdf(kdf_id, hashes.SHAKE128)
    if kdf_id == KDF_SHAKE256:
        return OneStageKdf(kdf_id, hashes.SHAKE256)
    raise UnknownSuite(f"unsupported HPKE KDF 0x{kdf_id:04x}")


def make_aead(aead_id: int) -> Aead | None:
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


# --- contexts (RFC 9180 sections 5.2 and 5.3) ---------------------------------------------


class _Context:
    def __init__(
        self,
        suite_id: bytes,
        kdf: HpkeKdf,
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
