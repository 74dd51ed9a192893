"""The KEM/HPKE surface that the rest of the project calls, through ``get_suite``."""

from __future__ import annotations

import pytest

from suites import DecryptionFailed, InvalidCiphertext, InvalidKey, get_suite
from suites.hpke import Hpke
from suites.kem import HybridKem, MlKem

SIZES = {"xwing": (1216, 1120, 768), "cnsa2": (1665, 1665, 1024)}


@pytest.mark.parametrize("name", ["xwing", "cnsa2"])
def test_suite_kem_and_hpke_surface(name: str) -> None:
    s = get_suite(name)
    assert isinstance(s.kem, HybridKem)
    assert isinstance(s.hpke, Hpke)
    assert isinstance(s.ratchet_kem, MlKem)
    pk_len, ct_len, level = SIZES[name]
    seed = bytes(range(32))
    sk = s.kem.private_key_from_seed(seed)
    pk = s.kem.public_key_bytes(sk)
    assert len(pk) == pk_len
    ct, ss = s.kem.encapsulate(pk)
    assert len(ct) == ct_len
    assert s.kem.decapsulate(sk, ct) == ss
    sealed = s.hpke.seal(pk, b"info", b"aad", b"plaintext")
    assert s.hpke.enc_len == ct_len
    assert s.hpke.open(sk, b"info", b"aad", sealed) == b"plaintext"
    with pytest.raises(DecryptionFailed):
        s.hpke.open(sk, b"info", b"other aad", sealed)
    with pytest.raises(InvalidCiphertext):
        s.kem.decapsulate(sk, ct[:-1])
    assert s.ratchet_kem.level == level


def test_suites_do_not_accept_each_others_keys() -> None:
    x, c = get_suite("xwing"), get_suite("cnsa2")
    x_sk, c_sk = x.kem.generate(), c.kem.generate()
    with pytest.raises(InvalidKey):
        x.kem.decapsulate(c_sk, x.kem.encapsulate(x.kem.public_key_bytes(x_sk))[0])
    with pytest.raises(InvalidKey):
        c.hpke.open(x_sk, b"", b"", c.hpke.seal(c.kem.public_key_bytes(c_sk), b"", b"", b"m"))
    with pytest.raises(InvalidKey):
        x.ratchet_kem.decapsulate(c.ratchet_kem.generate(), bytes(1088))
