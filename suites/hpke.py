"""HPKE: RFC 9180 key schedule and contexts over ``cryptography`` primitives.

``cryptography``'s own HPKE API cannot take associated data, so the key schedule is
sealrelay's, proved by the RFC 9180 and draft-ietf-hpke-pq test vectors. This module holds the
ciphersuite (:class:`Hpke`: modes, setup, single shot) and re-exports the rest, so
``suites.hpke`` stays the one import path: the key schedule, contexts and registry ids are in
``suites.hpke_schedule``, the KEMs in ``suites.hpke_kems``. What is implemented:

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

from typing import Final

from suites import labels
from suites.errors import DecryptionFailed, InvalidCiphertext, UnknownSuite
from suites.hpke_kems import DhKem, DhKemPrivateKey, HpkeKem, HpkePrivateKey, HybridHpkeKem
from suites.hpke_schedule import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    AEAD_EXPORT_ONLY,
    KDF_HKDF_SHA256,
    KDF_HKDF_SHA384,
    KDF_HKDF_SHA512,
    KDF_SHAKE128,
    KDF_SHAKE256,
    KEM_MLKEM768_X25519,
    KEM_MLKEM1024_P384,
    KEM_P256,
    KEM_P384,
    KEM_P521,
    KEM_X25519,
    MODE_AUTH,
    MODE_AUTH_PSK,
    MODE_BASE,
    MODE_PSK,
    HpkeError,
    RecipientContext,
    SenderContext,
    i2osp,
    make_aead,
    make_kdf,
)
from suites.kem import HybridKem

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AEAD_CHACHA20_POLY1305",
    "AEAD_EXPORT_ONLY",
    "KDF_HKDF_SHA256",
    "KDF_HKDF_SHA384",
    "KDF_HKDF_SHA512",
    "KDF_SHAKE128",
    "KDF_SHAKE256",
    "KEM_MLKEM768_X25519",
    "KEM_MLKEM1024_P384",
    "KEM_P256",
    "KEM_P384",
    "KEM_P521",
    "KEM_X25519",
    "MODE_AUTH",
    "MODE_AUTH_PSK",
    "MODE_BASE",
    "MODE_PSK",
    "DhKem",
    "DhKemPrivateKey",
    "Hpke",
    "HpkeError",
    "HpkePrivateKey",
    "RecipientContext",
    "SenderContext",
]

_SUITES: Final = {
    labels.SUITE_CNSA2: (KEM_MLKEM1024_P384, KDF_HKDF_SHA384, AEAD_AES_256_GCM),
    labels.SUITE_XWING: (KEM_MLKEM768_X25519, KDF_HKDF_SHA256, AEAD_AES_256_GCM),
}


# --- the HPKE suite ----------------------------------------------------------------------


class Hpke:
    """One HPKE ciphersuite ``(kem, kdf, aead)``.  ``enc_len`` is the size of ``enc``."""

    def __init__(self, kem: DhKem | HybridHpkeKem, kdf_id: int, aead_id: int) -> None:
        self.kem: HpkeKem = kem
        self._auth_kem = kem if isinstance(kem, DhKem) else None
        self.kem_id, self.kdf_id, self.aead_id = kem.kem_id, kdf_id, aead_id
        self._kdf = make_kdf(kdf_id)
        self._aead = make_aead(aead_id)
        self.enc_len = kem.enc_len
        self.tag_len = self._aead.tag_len if self._aead is not None else 0
        self.suite_id = (
            labels.HPKE_SUITE_PREFIX + i2osp(kem.kem_id, 2) + i2osp(kdf_id, 2) + i2osp(aead_id, 2)
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
        return cls(HybridHpkeKem(kem), kdf_id, aead_id)

    @classmethod
    def from_ids(cls, kem_id: int, kdf_id: int, aead_id: int) -> Hpke:
        """Any supported ``(kem_id, kdf_id, aead_id)`` of the registries."""
        for name, ids in _SUITES.items():
            if ids[0] == kem_id:
                return cls(HybridHpkeKem(HybridKem(name)), kdf_id, aead_id)
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
