"""ML-KEM-768/1024 (FIPS 203) against NIST ACVP and Wycheproof, and pqcrypto differentially.

Three implementations meet here: ``cryptography`` (what :class:`suites.kem.MlKem` uses; it
takes 64-byte seeds only), kyber-py (deterministic ``Encaps_internal`` with a given ``m``, and
``KeyGen_internal``'s expanded key) and pqcrypto (PQClean; takes expanded decapsulation keys,
which ``cryptography`` cannot load).
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024
from pqcrypto.kem import ml_kem_768, ml_kem_1024

from suites.errors import InvalidCiphertext, InvalidKey
from suites.kem import MlKem
from tests.vectorfiles import load_vectors, unhex

ACVP = load_vectors("mlkem.json")
WYCHEPROOF = load_vectors("mlkem-wycheproof.json")
LEVEL = {"ML-KEM-768": 768, "ML-KEM-1024": 1024}
KYBER = {768: ML_KEM_768, 1024: ML_KEM_1024}
PQCRYPTO = {768: ml_kem_768, 1024: ml_kem_1024}
PUBLIC_CLS: dict[int, type[mlkem.MLKEM768PublicKey] | type[mlkem.MLKEM1024PublicKey]] = {
    768: mlkem.MLKEM768PublicKey,
    1024: mlkem.MLKEM1024PublicKey,
}


def ratchet_kem(level: int) -> MlKem:
    return MlKem("xwing" if level == 768 else "cnsa2", level)


def acvp(doc: str, function: str | None = None) -> list[tuple[int, dict[str, Any], Any]]:
    """``(level, group, test)`` for every test of an ACVP document (optionally one function)."""
    return [
        (LEVEL[group["parameterSet"]], group, test)
        for group in ACVP[doc]["testGroups"]
        if function is None or group.get("function") == function
        for test in group["tests"]
    ]


def wycheproof(name: str) -> list[tuple[int, dict[str, Any]]]:
    doc = WYCHEPROOF[name]
    return [
        (LEVEL[group["parameterSet"]], test)
        for group in doc["testGroups"]
        for test in group["tests"]
    ]


def acvp_id(value: Any) -> str | None:
    if isinstance(value, int):
        return f"ML-KEM-{value}"
    if isinstance(value, dict) and "tcId" in value:
        return f"tc{value['tcId']}"
    return ""


def wp_id(value: Any) -> str | None:
    if isinstance(value, int):
        return f"ML-KEM-{value}"
    return f"tc{value['tcId']}-{value['result']}"


# --- NIST ACVP ---------------------------------------------------------------------------


def test_acvp_counts() -> None:
    assert len(acvp("keyGen")) == 20
    assert len(acvp("encapDecap", "encapsulation")) == 20
    assert len(acvp("encapDecap", "decapsulation")) == 20


@pytest.mark.parametrize(("level", "group", "test"), acvp("keyGen"), ids=acvp_id)
def test_acvp_keygen(level: int, group: dict[str, Any], test: dict[str, Any]) -> None:
    d, z = unhex(test["d"]), unhex(test["z"])
    kem = ratchet_kem(level)
    sk = kem.private_key_from_seed(d + z)
    assert kem.public_key_bytes(sk) == unhex(test["ek"])
    assert kem.private_key_bytes(sk) == d + z
    ek, dk = KYBER[level]._keygen_internal(d, z)  # the expanded key, which cryptography hides
    assert (ek, dk) == (unhex(test["ek"]), unhex(test["dk"]))
    ct, ss = kem.encapsulate(kem.public_key_bytes(sk))
    assert PQCRYPTO[level].decaps(unhex(test["dk"]), ct) == ss


@pytest.mark.parametrize(
    ("level", "group", "test"), acvp("encapDecap", "encapsulation"), ids=acvp_id
)
def test_acvp_encapsulation(level: int, group: dict[str, Any], test: dict[str, Any]) -> None:
    ek, dk, c, k = unhex(test["ek"]), unhex(test["dk"]), unhex(test["c"]), unhex(test["k"])
    ss, ct = KYBER[level]._encaps_internal(ek, unhex(test["m"]))
    assert (ct, ss) == (c, k)
    assert PQCRYPTO[level].decaps(dk, c) == k
    ratchet_kem(level).check_public(ek)
    ours_ct, ours_ss = ratchet_kem(level).encapsulate(ek)  # random m: checked by decapsulation
    assert PQCRYPTO[level].decaps(dk, ours_ct) == ours_ss


@pytest.mark.parametrize(
    ("level", "group", "test"), acvp("encapDecap", "decapsulation"), ids=acvp_id
)
def test_acvp_decapsulation(level: int, group: dict[str, Any], test: dict[str, Any]) -> None:
    """VAL groups give an expanded dk (no seed), so pqcrypto and kyber-py decapsulate; some
    ciphertexts are modified and must give the implicit-rejection key."""
    dk, c, k = unhex(group["dk"]), unhex(test["c"]), unhex(test["k"])
    assert PQCRYPTO[level].decaps(dk, c) == k
    assert KYBER[level].decaps(dk, c) == k


# --- Wycheproof --------------------------------------------------------------------------

DECAPS_CASES = wycheproof("mlkem_768_test") + wycheproof("mlkem_1024_test")
ENCAPS_CASES = wycheproof("mlkem_768_encaps_test") + wycheproof("mlkem_1024_encaps_test")


@pytest.mark.parametrize(("level", "test"), DECAPS_CASES, ids=wp_id)
def test_wycheproof_seed_keygen_and_decaps(level: int, test: dict[str, Any]) -> None:
    kem = ratchet_kem(level)
    seed, c = unhex(test["seed"]), unhex(test["c"])
    if len(seed) != kem.seed_len:
        assert test["result"] == "invalid"
        with pytest.raises(InvalidKey):
            kem.private_key_from_seed(seed)
        return
    sk = kem.private_key_from_seed(seed)
    assert kem.public_key_bytes(sk) == unhex(test["ek"])
    if test["result"] == "valid":
        assert kem.decapsulate(sk, c) == unhex(test["K"])
        expanded = KYBER[level].key_derive(seed)[1]
        assert PQCRYPTO[level].decaps(expanded, c) == unhex(test["K"])
    else:
        assert len(c) != kem.ciphertext_len, test["comment"]
        with pytest.raises(InvalidCiphertext, match="ciphertext must be"):
            kem.decapsulate(sk, c)


@pytest.mark.parametrize(("level", "test"), ENCAPS_CASES, ids=wp_id)
def test_wycheproof_encaps(level: int, test: dict[str, Any]) -> None:
    kem = ratchet_kem(level)
    ek = unhex(test["ek"])
    if test["result"] == "valid":
        kem.check_public(ek)
        PUBLIC_CLS[level].from_public_bytes(ek)
        ss, ct = KYBER[level]._encaps_internal(ek, unhex(test["m"]))
        assert (ct, ss) == (unhex(test["c"]), unhex(test["K"]))
        return
    with pytest.raises(InvalidKey):
        kem.encapsulate(ek)
    with pytest.raises(ValueError, match="public key"):
        PUBLIC_CLS[level].from_public_bytes(ek)
    with pytest.raises(ValueError, match="Validation of encapsulation key failed"):
        KYBER[level]._encaps_internal(ek, unhex(test["m"]))


def test_wycheproof_counts() -> None:
    assert len(DECAPS_CASES) == 24
    assert len(ENCAPS_CASES) == 18
    assert {t["result"] for _, t in DECAPS_CASES + ENCAPS_CASES} == {"valid", "invalid"}


# --- pqcrypto differential ---------------------------------------------------------------


@pytest.mark.parametrize("level", [768, 1024])
def test_pqcrypto_encaps_to_our_key(level: int) -> None:
    kem = ratchet_kem(level)
    for _ in range(3):
        sk = kem.generate()
        ct, ss = PQCRYPTO[level].encaps(kem.public_key_bytes(sk))
        assert kem.decapsulate(sk, ct) == ss


@pytest.mark.parametrize("level", [768, 1024])
def test_our_encaps_to_pqcrypto_key(level: int) -> None:
    kem = ratchet_kem(level)
    for _ in range(3):
        pk, sk = PQCRYPTO[level].keygen()
        ct, ss = kem.encapsulate(pk)
        assert PQCRYPTO[level].decaps(sk, ct) == ss
        tampered = bytes([ct[0] ^ 1]) + ct[1:]
        assert PQCRYPTO[level].decaps(sk, tampered) != ss
