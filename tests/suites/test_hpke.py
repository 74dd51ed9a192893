"""HPKE (RFC 9180 key schedule over our KEMs): vectors, differential tests and refusals.

- hpke-rfc9180.json: all 21 cases, all four modes; DeriveKeyPair, ``enc`` (deterministic
  ephemeral from ikmE), key schedule, all encryptions both ways, all exports.
- hpke-pq.json: every case whose KEM/KDF we implement (X-Wing 0x647a with HKDF-SHA256 and with
  SHAKE256, MLKEM1024-P384 0x0051, and DHKEM P-256/P-384 with SHAKE128/SHAKE256).  The hybrid
  KEM's ``enc`` is checked in test_kem.py (it needs kyber-py's deterministic ML-KEM); here the
  vector's shared secret feeds the sender side, and the recipient decapsulates ``enc``.
- cryptography's own HPKE (which cannot take ``aad``) as an independent implementation.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM1024P384PrivateKey,
    Suite,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from suites import labels
from suites.errors import DecryptionFailed, InvalidCiphertext, InvalidKey, UnknownSuite
from suites.hpke import (
    DhKem,
    DhKemPrivateKey,
    Hpke,
    HpkeError,
    RecipientContext,
    SenderContext,
)
from suites.kem import HybridKem, KemPrivateKey
from tests.vectorfiles import load_vectors, unhex

RFC9180 = load_vectors("hpke-rfc9180.json")
SUPPORTED_PQ = {(0x647A, 0x0001), (0x647A, 0x0011), (0x0051, 0x0002), (0x10, 0x10), (0x11, 0x11)}
PQ = [c for c in load_vectors("hpke-pq.json") if (c["kem_id"], c["kdf_id"]) in SUPPORTED_PQ]
MODES = {0: "base", 1: "psk", 2: "auth", 3: "auth_psk"}


def case_id(c: dict[str, Any]) -> str:
    return f"{MODES[c['mode']]}-kem{c['kem_id']:#06x}-kdf{c['kdf_id']:#06x}-aead{c['aead_id']:#06x}"


def check_contexts(
    case: dict[str, Any], sender: SenderContext, recipient: RecipientContext
) -> None:
    for ctx in (sender, recipient):
        assert ctx.key == unhex(case["key"])
        assert ctx.base_nonce == unhex(case["base_nonce"])
        assert ctx.exporter_secret == unhex(case["exporter_secret"])
    for enc in case["encryptions"]:
        aad, pt, ct = unhex(enc["aad"]), unhex(enc["pt"]), unhex(enc["ct"])
        assert sender.seal(aad, pt) == ct
        assert recipient.open(aad, ct) == pt
    assert sender.seq == recipient.seq == len(case["encryptions"])
    for exp in case["exports"]:
        context, length = unhex(exp["exporter_context"]), exp["L"]
        assert sender.export(context, length) == unhex(exp["exported_value"])
        assert recipient.export(context, length) == unhex(exp["exported_value"])


# --- RFC 9180 ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", RFC9180, ids=case_id)
def test_rfc9180(case: dict[str, Any]) -> None:
    hpke = Hpke.from_ids(case["kem_id"], case["kdf_id"], case["aead_id"])
    kem = hpke.kem
    assert isinstance(kem, DhKem)
    sk_r = kem.derive_key_pair(unhex(case["ikmR"]))
    sk_e = kem.derive_key_pair(unhex(case["ikmE"]))
    assert kem.private_key_bytes(sk_r) == unhex(case["skRm"])
    assert kem.public_key_bytes(sk_r) == unhex(case["pkRm"])
    assert kem.private_key_bytes(sk_e) == unhex(case["skEm"])
    assert kem.public_key_bytes(sk_e) == unhex(case["pkEm"])
    assert kem.private_key_from_bytes(unhex(case["skRm"])).public == unhex(case["pkRm"])

    pk_r, info, ikm_e = unhex(case["pkRm"]), unhex(case["info"]), unhex(case["ikmE"])
    psk, psk_id = unhex(case.get("psk", "")), unhex(case.get("psk_id", ""))
    mode = case["mode"]
    if mode in (0, 1):
        if mode == 0:
            enc, sender = hpke.setup_base_s(pk_r, info, ikm_e=ikm_e)
            recipient = hpke.setup_base_r(enc, sk_r, info)
        else:
            enc, sender = hpke.setup_psk_s(pk_r, info, psk, psk_id, ikm_e=ikm_e)
            recipient = hpke.setup_psk_r(enc, sk_r, info, psk, psk_id)
        shared = kem.decap(enc, sk_r)
    else:
        sk_s = kem.derive_key_pair(unhex(case["ikmS"]))
        assert kem.private_key_bytes(sk_s) == unhex(case["skSm"])
        assert kem.public_key_bytes(sk_s) == unhex(case["pkSm"])
        enc, sender = hpke.setup_auth_s(pk_r, info, sk_s, psk=psk, psk_id=psk_id, ikm_e=ikm_e)
        recipient = hpke.setup_auth_r(enc, sk_r, info, sk_s.public, psk=psk, psk_id=psk_id)
        shared = kem.auth_decap(enc, sk_r, sk_s.public)
    assert enc == unhex(case["enc"])
    assert shared == unhex(case["shared_secret"])
    check_contexts(case, sender, recipient)


def test_rfc9180_vector_set_is_complete() -> None:
    """The file is what SOURCES.md says, so the parametrised test above covers it all."""
    assert len(RFC9180) == 21
    assert sum(len(c["encryptions"]) for c in RFC9180) == 16 * 257  # 5 are export-only


@pytest.mark.parametrize(
    ("kem_id", "order"),
    [
        (0x0010, 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
        (0x0011, int("ff" * 24 + "c7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16)),
        (
            0x0012,
            int(
                "1"
                + "ff" * 32
                + "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
                16,
            ),
        ),
    ],
)
def test_dhkem_rejection_bound_is_the_group_order(kem_id: int, order: int) -> None:
    """The order constants the DeriveKeyPair loop rejects against (section 7.1.3)."""
    kem = DhKem(kem_id)
    nsk = kem.private_len
    curves: dict[int, ec.EllipticCurve] = {
        0x0010: ec.SECP256R1(),
        0x0011: ec.SECP384R1(),
        0x0012: ec.SECP521R1(),
    }
    curve = curves[kem_id]
    ec.derive_private_key(order - 1, curve)  # cryptography agrees this is the group order
    with pytest.raises(ValueError, match="Invalid EC key"):
        ec.derive_private_key(order, curve)
    assert kem.order == order
    assert kem.private_key_from_bytes((order - 1).to_bytes(nsk, "big")).public
    for bad in (0, order):
        with pytest.raises(InvalidKey, match="range"):
            kem.private_key_from_bytes(bad.to_bytes(nsk, "big"))


# --- draft-ietf-hpke-pq ------------------------------------------------------------------


def test_pq_vector_selection() -> None:
    kems = sorted((c["kem_id"], c["kdf_id"]) for c in PQ)
    assert kems == sorted(SUPPORTED_PQ)


@pytest.mark.parametrize("case", PQ, ids=case_id)
def test_hpke_pq(case: dict[str, Any]) -> None:
    hpke = Hpke.from_ids(case["kem_id"], case["kdf_id"], case["aead_id"])
    assert hpke.suite_id == unhex(case["suite_id"])
    info = unhex(case["info"])
    sk: KemPrivateKey | DhKemPrivateKey
    if isinstance(hpke.kem, DhKem):
        sk = hpke.kem.derive_key_pair(unhex(case["ikmR"]))
        enc, sender = hpke.setup_base_s(unhex(case["pkRm"]), info, ikm_e=unhex(case["ikmE"]))
        assert enc == unhex(case["enc"])
    else:
        kem = HybridKem(labels.SUITE_CNSA2 if case["kem_id"] == 0x0051 else labels.SUITE_XWING)
        sk = kem.derive_key_pair(unhex(case["ikmR"]))
        assert kem.private_key_bytes(sk) == unhex(case["skRm"])
        sender = hpke.sender_context(0, unhex(case["shared_secret"]), info)
    assert sk.public == unhex(case["pkRm"])
    recipient = hpke.setup_base_r(unhex(case["enc"]), sk, info)
    check_contexts(case, sender, recipient)


# --- the suites' HPKE and the exact product surface ---------------------------------------


@pytest.fixture(params=["xwing", "cnsa2"], scope="module")
def suite_hpke(request: pytest.FixtureRequest) -> tuple[HybridKem, Hpke, KemPrivateKey]:
    kem = HybridKem(request.param)
    return kem, Hpke.for_suite(request.param, kem), kem.generate()


def test_for_suite_ids() -> None:
    cnsa2 = Hpke.for_suite("cnsa2", HybridKem("cnsa2"))
    xwing = Hpke.for_suite("xwing", HybridKem("xwing"))
    assert (cnsa2.kem_id, cnsa2.kdf_id, cnsa2.aead_id) == (0x0051, 0x0002, 0x0002)
    assert (xwing.kem_id, xwing.kdf_id, xwing.aead_id) == (0x647A, 0x0001, 0x0002)
    assert (cnsa2.enc_len, xwing.enc_len) == (1665, 1120)
    with pytest.raises(UnknownSuite):
        Hpke.for_suite("xwing", HybridKem("cnsa2"))
    with pytest.raises(UnknownSuite):
        Hpke.from_ids(0x0020, 0x0001, 0x0004)


def test_seal_open_round_trip(suite_hpke: tuple[HybridKem, Hpke, KemPrivateKey]) -> None:
    kem, hpke, sk = suite_hpke
    pk = kem.public_key_bytes(sk)
    sealed = hpke.seal(pk, b"info", b"aad", b"plaintext")
    assert len(sealed) == hpke.enc_len + len(b"plaintext") + 16
    assert hpke.open(sk, b"info", b"aad", sealed) == b"plaintext"
    assert hpke.open(sk, b"", b"", hpke.seal(pk, b"", b"", b"")) == b""
    assert hpke.seal(pk, b"info", b"aad", b"plaintext") != sealed


def test_tampering_fails(suite_hpke: tuple[HybridKem, Hpke, KemPrivateKey]) -> None:
    kem, hpke, sk = suite_hpke
    sealed = hpke.seal(kem.public_key_bytes(sk), b"info", b"aad", b"secret message")
    for pos in (0, 10, hpke.enc_len - 1, hpke.enc_len, len(sealed) - 1):  # enc, ct and tag
        bad = bytearray(sealed)
        bad[pos] ^= 0x40
        with pytest.raises(DecryptionFailed):
            hpke.open(sk, b"info", b"aad", bytes(bad))
    with pytest.raises(DecryptionFailed):
        hpke.open(sk, b"info", b"aaD", sealed)
    with pytest.raises(DecryptionFailed):
        hpke.open(sk, b"infO", b"aad", sealed)
    with pytest.raises(DecryptionFailed):
        hpke.open(kem.generate(), b"info", b"aad", sealed)
    with pytest.raises(DecryptionFailed):
        hpke.open(sk, b"info", b"aad", sealed[:-1])
    with pytest.raises(InvalidCiphertext):
        hpke.open(sk, b"info", b"aad", sealed[: hpke.enc_len + 15])
    with pytest.raises(InvalidCiphertext):
        hpke.open(sk, b"info", b"aad", b"")


def test_cross_suite_keys_refused() -> None:
    x_kem, c_kem = HybridKem("xwing"), HybridKem("cnsa2")
    x_hpke, c_hpke = Hpke.for_suite("xwing", x_kem), Hpke.for_suite("cnsa2", c_kem)
    x_sk, c_sk = x_kem.generate(), c_kem.generate()
    with pytest.raises(InvalidKey):
        x_hpke.seal(c_kem.public_key_bytes(c_sk), b"", b"", b"m")
    with pytest.raises(InvalidKey):
        c_hpke.seal(x_kem.public_key_bytes(x_sk), b"", b"", b"m")
    sealed = c_hpke.seal(c_kem.public_key_bytes(c_sk), b"", b"", b"m")
    with pytest.raises(InvalidKey):
        c_hpke.open(x_sk, b"", b"", sealed)
    with pytest.raises(InvalidKey):
        c_hpke.open(DhKem(0x0011).generate(), b"", b"", sealed)


@settings(max_examples=25, deadline=None)
@given(garbage=st.binary(max_size=1800))
def test_open_of_garbage_raises_only_suite_errors(garbage: bytes) -> None:
    for hpke, sk in _GARBAGE_TARGETS:
        with pytest.raises((DecryptionFailed, InvalidCiphertext)):
            hpke.open(sk, b"info", b"aad", garbage)


_GARBAGE_TARGETS = [
    (Hpke.for_suite(name, kem), kem.private_key_from_seed(bytes(32)))
    for name, kem in (("xwing", HybridKem("xwing")), ("cnsa2", HybridKem("cnsa2")))
]


# --- contexts: sequence numbers, export-only, PSK and auth rules -----------------------------


def test_context_sequence_and_failed_open_does_not_advance() -> None:
    hpke = Hpke.from_ids(0x0020, 0x0001, 0x0003)
    sk = DhKem(0x0020).derive_key_pair(b"r" * 32)
    enc, sender = hpke.setup_base_s(sk.public, b"info")
    recipient = hpke.setup_base_r(enc, sk, b"info")
    c0, c1 = sender.seal(b"", b"zero"), sender.seal(b"", b"one")
    with pytest.raises(DecryptionFailed):
        recipient.open(b"", c1)  # out of order
    assert recipient.seq == 0
    assert recipient.open(b"", c0) == b"zero"
    assert recipient.open(b"", c1) == b"one"
    sender.seq = (1 << 96) - 1
    with pytest.raises(HpkeError, match="limit"):
        sender.seal(b"", b"x")
    assert "key" not in repr(sender).lower()


def test_export_only_and_psk_rules() -> None:
    hpke = Hpke.from_ids(0x0020, 0x0001, 0xFFFF)
    sk = DhKem(0x0020).generate()
    enc, sender = hpke.setup_base_s(sk.public, b"")
    with pytest.raises(HpkeError, match="export-only"):
        sender.seal(b"", b"x")
    with pytest.raises(HpkeError, match="export-only"):
        hpke.setup_base_r(enc, sk, b"").open(b"", b"x" * 16)
    assert sender.export(b"ctx", 77) == hpke.setup_base_r(enc, sk, b"").export(b"ctx", 77)
    with pytest.raises(HpkeError, match="psk"):
        hpke.setup_psk_s(sk.public, b"", b"p" * 32, b"")
    with pytest.raises(HpkeError, match="PSK"):
        hpke.sender_context(1, b"s" * 32, b"")
    with pytest.raises(HpkeError, match="PSK"):
        hpke.sender_context(0, b"s" * 32, b"", b"p" * 32, b"id")
    xwing = Hpke.for_suite("xwing", HybridKem("xwing"))
    with pytest.raises(HpkeError, match="authenticated"):
        xwing.setup_auth_s(HybridKem("xwing").generate().public, b"", sk)
    with pytest.raises(HpkeError, match="deterministic"):
        xwing.setup_base_s(b"", b"", ikm_e=b"e" * 64)


def test_shake_kdf_export_lengths() -> None:
    hpke = Hpke.from_ids(0x647A, 0x0011, 0x0003)
    ctx = hpke.sender_context(0, bytes(32), b"")
    assert len(ctx.export(b"", 1)) == 1
    assert len(ctx.export(b"", 0xFFFF)) == 0xFFFF
    with pytest.raises(HpkeError):
        ctx.export(b"", 0x10000)


# --- differential: cryptography's built-in HPKE ------------------------------------------


def _theirs(suite: str, sk: KemPrivateKey) -> MLKEM768X25519PrivateKey | MLKEM1024P384PrivateKey:
    """cryptography's hybrid key object built from our expanded components."""
    if suite == "xwing":
        assert isinstance(sk.group_key, x25519.X25519PrivateKey)
        return MLKEM768X25519PrivateKey(sk.mlkem_key, sk.group_key)  # type: ignore[arg-type]
    assert isinstance(sk.group_key, ec.EllipticCurvePrivateKey)
    return MLKEM1024P384PrivateKey(sk.mlkem_key, sk.group_key)  # type: ignore[arg-type]


THEIR_SUITES = [
    ("xwing", 0x0001, KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
    ("xwing", 0x0011, KEM.MLKEM768_X25519, KDF.SHAKE256, AEAD.CHACHA20_POLY1305),
    ("cnsa2", 0x0002, KEM.MLKEM1024_P384, KDF.HKDF_SHA384, AEAD.AES_256_GCM),
    ("cnsa2", 0x0010, KEM.MLKEM1024_P384, KDF.SHAKE128, AEAD.AES_128_GCM),
]


@pytest.mark.parametrize(
    ("suite", "kdf_id", "their_kem", "their_kdf", "their_aead"),
    THEIR_SUITES,
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_differential_with_cryptography(
    suite: str, kdf_id: int, their_kem: KEM, their_kdf: KDF, their_aead: AEAD
) -> None:
    kem = HybridKem(suite)
    aead_id = {AEAD.AES_256_GCM: 2, AEAD.CHACHA20_POLY1305: 3, AEAD.AES_128_GCM: 1}[their_aead]
    ours = Hpke.from_ids(kem.kem_id, kdf_id, aead_id)
    theirs = Suite(their_kem, their_kdf, their_aead)
    sk = kem.private_key_from_seed(bytes(range(32)))
    their_sk = _theirs(suite, sk)
    assert their_kem.enc_length() == ours.enc_len

    sealed_by_them = theirs.encrypt(b"from cryptography", their_sk.public_key(), b"info")
    assert ours.open(sk, b"info", b"", sealed_by_them) == b"from cryptography"
    with pytest.raises(DecryptionFailed):
        ours.open(sk, b"other info", b"", sealed_by_them)

    sealed_by_us = ours.seal(sk.public, b"info", b"", b"from sealrelay")
    assert theirs.decrypt(sealed_by_us, their_sk, b"info") == b"from sealrelay"


def test_differential_with_aad_through_cryptography_internal_api() -> None:
    """cryptography 50 has aad only in a private helper; pinned, so use it to cover aad."""
    from cryptography.hazmat.bindings._rust import openssl as rust_openssl

    encrypt_with_aad = rust_openssl.hpke._encrypt_with_aad
    decrypt_with_aad = rust_openssl.hpke._decrypt_with_aad
    for suite, kdf_id, their_kem, their_kdf, their_aead in THEIR_SUITES[::2]:
        kem = HybridKem(suite)
        ours = Hpke.from_ids(kem.kem_id, kdf_id, 2)
        theirs = Suite(their_kem, their_kdf, their_aead)
        sk = kem.generate()
        their_sk = _theirs(suite, sk)
        sealed = encrypt_with_aad(theirs, b"pt", their_sk.public_key(), b"info", b"aad")
        assert ours.open(sk, b"info", b"aad", sealed) == b"pt"
        with pytest.raises(DecryptionFailed):
            ours.open(sk, b"info", b"", sealed)
        mine = ours.seal(sk.public, b"info", b"aad", b"pt2")
        assert decrypt_with_aad(theirs, mine, their_sk, b"info", b"aad") == b"pt2"


def test_differential_dhkem_with_cryptography() -> None:
    cases = [
        (0x0020, KEM.X25519, 0x0001, KDF.HKDF_SHA256),
        (0x0010, KEM.P256, 0x0001, KDF.HKDF_SHA256),
        (0x0011, KEM.P384, 0x0002, KDF.HKDF_SHA384),
        (0x0012, KEM.P521, 0x0003, KDF.HKDF_SHA512),
    ]
    for kem_id, their_kem, kdf_id, their_kdf in cases:
        ours = Hpke.from_ids(kem_id, kdf_id, 0x0003)
        theirs = Suite(their_kem, their_kdf, AEAD.CHACHA20_POLY1305)
        sk = DhKem(kem_id).generate()
        sealed = theirs.encrypt(b"hello", sk.key.public_key(), b"i")
        assert ours.open(sk, b"i", b"", sealed) == b"hello"
        assert theirs.decrypt(ours.seal(sk.public, b"i", b"", b"back"), sk.key, b"i") == b"back"
