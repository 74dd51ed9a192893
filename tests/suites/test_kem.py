"""Hybrid KEMs (X-Wing, MLKEM1024-P384) and the ratchet's ML-KEM: vectors and refusals.

Vectors: xwing.json (draft-connolly-cfrg-xwing-kem) and the KEM part of hpke-pq.json
(draft-ietf-hpke-pq: DeriveKeyPair, decapsulation and derandomised encapsulation).
Deterministic ML-KEM encapsulation (``Encaps_internal`` with a given ``m``) comes from
kyber-py, since ``cryptography`` only encapsulates with its own randomness.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given, settings
from hypothesis import strategies as st
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024

from suites import labels
from suites.errors import InvalidCiphertext, InvalidKey
from suites.kem import (
    HybridKem,
    KemPrivateKey,
    MlKem,
    MlKemEncapsDerand,
    MlKemPrivateKey,
    c2pri_combine,
    mlkem1024_p384_combine,
    xwing_combine,
)
from tests.vectorfiles import load_vectors, unhex

XWING = load_vectors("xwing.json")
PQ_HYBRID = [c for c in load_vectors("hpke-pq.json") if c["kem_id"] in (0x647A, 0x0051)]
SUITE_OF_KEM_ID = {0x647A: labels.SUITE_XWING, 0x0051: labels.SUITE_CNSA2}


def kyber_encaps(level: int) -> MlKemEncapsDerand:
    """kyber-py's FIPS 203 ``Encaps_internal(ek, m)`` as ``(ct, ss)``."""
    impl = ML_KEM_768 if level == 768 else ML_KEM_1024

    def encaps(ek: bytes, m: bytes) -> tuple[bytes, bytes]:
        ss, ct = impl._encaps_internal(ek, m)
        return ct, ss

    return encaps


@pytest.fixture(scope="module")
def xwing() -> HybridKem:
    return HybridKem(labels.SUITE_XWING)


@pytest.fixture(scope="module")
def cnsa2() -> HybridKem:
    return HybridKem(labels.SUITE_CNSA2)


# --- X-Wing vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("case", XWING, ids=lambda c: c["seed"][:8])
def test_xwing_vectors(xwing: HybridKem, case: dict[str, Any]) -> None:
    assert case["sk"] == case["seed"]
    sk = xwing.private_key_from_seed(unhex(case["seed"]))
    assert xwing.public_key_bytes(sk) == unhex(case["pk"])
    assert xwing.private_key_bytes(sk) == unhex(case["seed"])
    assert xwing.decapsulate(sk, unhex(case["ct"])) == unhex(case["ss"])
    ct, ss = xwing.encapsulate_derand(unhex(case["pk"]), unhex(case["eseed"]), kyber_encaps(768))
    assert ct == unhex(case["ct"])
    assert ss == unhex(case["ss"])


def test_xwing_combiner_is_the_spec_formula() -> None:
    case = XWING[0]
    ct, pk = unhex(case["ct"]), unhex(case["pk"])
    expanded = _shake256(unhex(case["seed"]), 96)
    _, dk_m = ML_KEM_768.key_derive(expanded[:64])
    ss_m = ML_KEM_768.decaps(dk_m, ct[:1088])
    x_sk = expanded[64:]
    ss_x = x25519.X25519PrivateKey.from_private_bytes(x_sk).exchange(
        x25519.X25519PublicKey.from_public_bytes(ct[1088:])
    )
    expected = _sha3_256(ss_m + ss_x + ct[1088:] + pk[1184:] + b"\\.//^\\")
    assert xwing_combine(ss_m, ss_x, ct[1088:], pk[1184:]) == expected == unhex(case["ss"])
    assert labels.XWING_COMBINER_LABEL.hex() == "5c2e2f2f5e5c"


# --- hpke-pq.json KEM part (0x647a X-Wing, 0x0051 MLKEM1024-P384) ------------------------


@pytest.mark.parametrize(
    "case", PQ_HYBRID, ids=lambda c: f"kem{c['kem_id']:#06x}-kdf{c['kdf_id']:#06x}"
)
def test_hpke_pq_hybrid_kem(case: dict[str, Any]) -> None:
    kem = HybridKem(SUITE_OF_KEM_ID[case["kem_id"]])
    derived = kem.derive_key_pair(unhex(case["ikmR"]))
    assert kem.private_key_bytes(derived) == unhex(case["skRm"])
    assert kem.public_key_bytes(derived) == unhex(case["pkRm"])
    sk = kem.private_key_from_seed(unhex(case["skRm"]))
    assert kem.public_key_bytes(sk) == unhex(case["pkRm"])
    assert kem.decapsulate(sk, unhex(case["enc"])) == unhex(case["shared_secret"])
    level = 1024 if case["kem_id"] == 0x0051 else 768
    ct, ss = kem.encapsulate_derand(unhex(case["pkRm"]), unhex(case["ikmE"]), kyber_encaps(level))
    assert ct == unhex(case["enc"])
    assert ss == unhex(case["shared_secret"])


def test_mlkem1024_p384_combiner_label(cnsa2: HybridKem) -> None:
    assert labels.MLKEM1024_P384_COMBINER_LABEL.hex() == "4d4c4b454d313032342d50333834"
    args = (b"a" * 32, b"b" * 48, b"c" * 97, b"d" * 97)
    assert mlkem1024_p384_combine(*args) == c2pri_combine(*args, b"MLKEM1024-P384")
    assert mlkem1024_p384_combine(*args) != c2pri_combine(*args, labels.XWING_COMBINER_LABEL)


# --- round trips, sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suite", "pk_len", "ct_len"), [("xwing", 1216, 1120), ("cnsa2", 1665, 1665)]
)
def test_round_trip_and_sizes(suite: str, pk_len: int, ct_len: int) -> None:
    kem = HybridKem(suite)
    assert (kem.public_len, kem.ciphertext_len, kem.shared_len, kem.seed_len) == (
        pk_len,
        ct_len,
        32,
        32,
    )
    sk = kem.generate()
    pk = kem.public_key_bytes(sk)
    assert len(pk) == pk_len
    kem.check_public(pk)
    ct, ss = kem.encapsulate(pk)
    assert (len(ct), len(ss)) == (ct_len, 32)
    assert kem.decapsulate(sk, ct) == ss
    ct2, ss2 = kem.encapsulate(pk)
    assert ct2 != ct
    assert ss2 != ss
    again = kem.private_key_from_seed(kem.private_key_bytes(sk))
    assert kem.public_key_bytes(again) == pk
    assert kem.decapsulate(again, ct) == ss


def test_tampered_ciphertext_gives_another_secret(xwing: HybridKem, cnsa2: HybridKem) -> None:
    for kem, flip in ((xwing, 5), (xwing, 1100), (cnsa2, 5)):
        sk = kem.generate()
        ct, ss = kem.encapsulate(kem.public_key_bytes(sk))
        bad = bytearray(ct)
        bad[flip] ^= 0x01
        assert kem.decapsulate(sk, bytes(bad)) != ss


def test_repr_hides_secrets(cnsa2: HybridKem) -> None:
    seed = bytes(range(32))
    sk = cnsa2.private_key_from_seed(seed)
    text = repr(sk) + str(sk)
    assert seed.hex() not in text
    assert seed.hex()[:16] not in text
    assert "cnsa2" in text
    mk = MlKem("cnsa2", 1024).private_key_from_seed(bytes(range(64)))
    assert bytes(range(64)).hex()[:16] not in repr(mk)


# --- refusals -----------------------------------------------------------------------------


def test_key_of_other_suite_refused(xwing: HybridKem, cnsa2: HybridKem) -> None:
    sk_x = xwing.generate()
    sk_c = cnsa2.generate()
    ct_c, _ = cnsa2.encapsulate(cnsa2.public_key_bytes(sk_c))
    ct_x, _ = xwing.encapsulate(xwing.public_key_bytes(sk_x))
    with pytest.raises(InvalidKey):
        xwing.decapsulate(sk_c, ct_x)
    with pytest.raises(InvalidKey):
        cnsa2.decapsulate(sk_x, ct_c)
    with pytest.raises(InvalidKey):
        xwing.public_key_bytes(sk_c)
    with pytest.raises(InvalidKey):
        cnsa2.private_key_bytes(sk_x)
    ratchet = MlKem("cnsa2", 1024)
    with pytest.raises(InvalidKey):
        ratchet.decapsulate(sk_c, ct_c[:1568])  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        cnsa2.decapsulate(ratchet.generate(), ct_c)  # type: ignore[arg-type]


def test_wrong_length_public_key_refused(xwing: HybridKem, cnsa2: HybridKem) -> None:
    pk_c = cnsa2.public_key_bytes(cnsa2.generate())
    pk_x = xwing.public_key_bytes(xwing.generate())
    for kem, pk in ((xwing, pk_c), (cnsa2, pk_x), (xwing, pk_x[:-1]), (cnsa2, pk_c + b"\x00")):
        with pytest.raises(InvalidKey, match="public key must be"):
            kem.encapsulate(pk)
        with pytest.raises(InvalidKey):
            kem.check_public(pk)


def test_wrong_length_ciphertext_refused(xwing: HybridKem, cnsa2: HybridKem) -> None:
    sk_x, sk_c = xwing.generate(), cnsa2.generate()
    ct_x, _ = xwing.encapsulate(xwing.public_key_bytes(sk_x))
    ct_c, _ = cnsa2.encapsulate(cnsa2.public_key_bytes(sk_c))
    cases = ((xwing, sk_x, ct_c), (cnsa2, sk_c, ct_x), (xwing, sk_x, ct_x[:-1]), (cnsa2, sk_c, b""))
    for kem, sk, ct in cases:
        with pytest.raises(InvalidCiphertext, match=f"must be {kem.ciphertext_len} bytes"):
            kem.decapsulate(sk, ct)


def test_invalid_group_elements_refused(xwing: HybridKem, cnsa2: HybridKem) -> None:
    sk_c = cnsa2.generate()
    pk_c = cnsa2.public_key_bytes(sk_c)
    ct_c, _ = cnsa2.encapsulate(pk_c)
    not_on_curve = ct_c[:1568] + b"\x04" + bytes(96)
    compressed_tag = ct_c[:1568] + b"\x02" + ct_c[1569:]
    for bad in (not_on_curve, compressed_tag):
        with pytest.raises(InvalidCiphertext):
            cnsa2.decapsulate(sk_c, bad)
        with pytest.raises(InvalidKey):
            cnsa2.encapsulate(bad)  # same length as a public key: refused as a key
    sk_x = xwing.generate()
    ct_x, _ = xwing.encapsulate(xwing.public_key_bytes(sk_x))
    with pytest.raises(InvalidCiphertext):  # a low-order X25519 point
        xwing.decapsulate(sk_x, ct_x[:1088] + bytes(32))
    with pytest.raises(InvalidKey):
        xwing.encapsulate(xwing.public_key_bytes(sk_x)[:1184] + bytes(32))
    with pytest.raises(InvalidKey):  # a key naming one is refused before any use
        xwing.check_public(xwing.public_key_bytes(sk_x)[:1184] + bytes(32))


def test_unreduced_mlkem_public_key_refused(cnsa2: HybridKem) -> None:
    pk = bytearray(cnsa2.public_key_bytes(cnsa2.generate()))
    pk[0], pk[1] = 0xFF, pk[1] | 0x0F  # first 12-bit coefficient = 0xFFF > q
    with pytest.raises(InvalidKey, match="ML-KEM"):
        cnsa2.encapsulate(bytes(pk))


@pytest.mark.parametrize("suite", ["xwing", "cnsa2"])
def test_bad_seed_refused(suite: str) -> None:
    kem = HybridKem(suite)
    for seed in (b"", bytes(31), bytes(33), bytes(64)):
        with pytest.raises(InvalidKey):
            kem.private_key_from_seed(seed)
    with pytest.raises(ValueError, match="randomness"):
        kem.encapsulate_derand(kem.public_key_bytes(kem.generate()), b"", kyber_encaps(768))


def test_unknown_suite_refused() -> None:
    with pytest.raises(ValueError, match="suite"):
        HybridKem("rsa")
    with pytest.raises(ValueError, match="level"):
        MlKem("xwing", 512)


_KEYS = [(k, k.private_key_from_seed(bytes(32))) for k in (HybridKem("xwing"), HybridKem("cnsa2"))]


@settings(max_examples=30, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.binary(min_size=1120, max_size=1120),
        st.binary(min_size=1665, max_size=1665),
    )
)
def test_arbitrary_ciphertext_raises_only_invalid_ciphertext(data: bytes) -> None:
    for kem, sk in _KEYS:
        if len(data) != kem.ciphertext_len:
            with pytest.raises(InvalidCiphertext, match="must be"):
                kem.decapsulate(sk, data)
            continue
        outcome: bytes | str
        try:
            outcome = kem.decapsulate(sk, data)
        except InvalidCiphertext as exc:  # a group element that is no (safe) point
            outcome = str(exc)
        assert len(outcome) == 32 if isinstance(outcome, bytes) else "element" in outcome


# --- the ratchet's ML-KEM -----------------------------------------------------------------


@pytest.mark.parametrize(("level", "pk_len", "ct_len"), [(768, 1184, 1088), (1024, 1568, 1568)])
def test_mlkem_round_trip(level: int, pk_len: int, ct_len: int) -> None:
    kem = MlKem("xwing" if level == 768 else "cnsa2", level)
    assert (kem.public_len, kem.ciphertext_len, kem.shared_len, kem.seed_len) == (
        pk_len,
        ct_len,
        32,
        64,
    )
    sk = kem.generate()
    assert isinstance(sk, MlKemPrivateKey)
    pk = kem.public_key_bytes(sk)
    ct, ss = kem.encapsulate(pk)
    assert (len(pk), len(ct), len(ss)) == (pk_len, ct_len, 32)
    assert kem.decapsulate(sk, ct) == ss
    again = kem.private_key_from_seed(kem.private_key_bytes(sk))
    assert kem.public_key_bytes(again) == pk
    assert kem.decapsulate(again, ct) == ss
    with pytest.raises(InvalidCiphertext, match=f"must be {ct_len} bytes"):
        kem.decapsulate(sk, ct[:-1])
    with pytest.raises(InvalidKey):
        kem.encapsulate(pk + b"\x00")
    with pytest.raises(InvalidKey):
        kem.private_key_from_seed(bytes(32))


def test_mlkem_key_of_other_suite_or_level_refused() -> None:
    a = MlKem("xwing", 768)
    b = MlKem("cnsa2", 768)
    c = MlKem("xwing", 1024)
    sk = a.generate()
    ct, _ = a.encapsulate(a.public_key_bytes(sk))
    for other in (b, c):
        with pytest.raises(InvalidKey):
            other.decapsulate(sk, ct)
    hybrid_sk: KemPrivateKey = HybridKem("xwing").generate()
    with pytest.raises(InvalidKey):
        a.public_key_bytes(hybrid_sk)  # type: ignore[arg-type]


def _shake256(data: bytes, length: int) -> bytes:
    h = hashes.Hash(hashes.SHAKE256(digest_size=length))
    h.update(data)
    return h.finalize()


def _sha3_256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA3_256())
    h.update(data)
    return h.finalize()
