"""Unit tests of the thin primitive wrappers: padding, DH, AEAD and HKDF/HMAC."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suites import labels
from suites.aead import Aead
from suites.dh import Dh
from suites.errors import DecryptionFailed, InvalidKey, SuiteError
from suites.kdf import Kdf, constant_time_equal
from suites.padding import BUCKETS, PaddingError, bucket_for, pad, unpad

# --- padding ---------------------------------------------------------------------------------


@given(length=st.integers(0, 1 << 22))
def test_bucket_is_the_smallest_that_fits(length: int) -> None:
    bucket = bucket_for(length)
    assert bucket >= length + 1  # room for the 0x80 marker
    if bucket in BUCKETS:
        smaller = [b for b in BUCKETS if b < bucket]
        assert not smaller or max(smaller) < length + 1
    else:
        assert bucket % 65536 == 0
        assert bucket - 65536 < length + 1


@given(data=st.binary(max_size=5000))
def test_pad_round_trip(data: bytes) -> None:
    padded = pad(data)
    assert len(padded) == bucket_for(len(data))
    assert unpad(padded) == data


@pytest.mark.parametrize(
    "length", [0, 1023, 1024, 4095, 4096, 16383, 16384, 65535, 65536, 131071, 131072]
)
def test_pad_at_bucket_edges(length: int) -> None:
    data = b"\x00" * length  # trailing zeros in the body must survive
    padded = pad(data)
    assert len(padded) in (*BUCKETS, 131072, 196608)
    assert len(padded) == bucket_for(length)
    assert unpad(padded) == data


def test_bucket_sizes() -> None:
    assert [bucket_for(n) for n in (0, 1023, 1024, 4095, 4096, 16383, 16384, 65535)] == [
        1024,
        1024,
        4096,
        4096,
        16384,
        16384,
        65536,
        65536,
    ]
    assert bucket_for(65536) == bucket_for(131071) == 131072
    assert bucket_for(131072) == 196608


@pytest.mark.parametrize("bad", [b"", bytes(1024), b"abc", b"ab\x81\x00\x00", b"\x80\x01"])
def test_bad_padding_refused(bad: bytes) -> None:
    with pytest.raises(PaddingError) as error:
        unpad(bad)
    assert isinstance(error.value, SuiteError)
    assert error.value.code == "suite.bad_padding"


# --- DH --------------------------------------------------------------------------------------

DH_GROUPS = [(labels.SUITE_CNSA2, "p384"), (labels.SUITE_XWING, "x25519")]


@pytest.fixture(params=DH_GROUPS, ids=[g for _, g in DH_GROUPS])
def dh(request: pytest.FixtureRequest) -> Dh:
    suite, group = request.param
    return Dh(suite, group)


def test_dh_agreement(dh: Dh) -> None:
    alice, bob = dh.generate(), dh.generate()
    shared = dh.exchange(alice, dh.public_key_bytes(bob))
    assert shared == dh.exchange(bob, dh.public_key_bytes(alice))
    assert len(shared) == dh.shared_len
    assert shared != dh.exchange(alice, dh.public_key_bytes(dh.generate()))


def test_dh_private_key_round_trip(dh: Dh) -> None:
    sk = dh.generate()
    stored = dh.private_key_bytes(sk)
    assert len(stored) == dh.private_len
    loaded = dh.private_key_from_bytes(stored)
    assert dh.public_key_bytes(loaded) == dh.public_key_bytes(sk) == sk.public
    assert len(sk.public) == dh.public_len
    assert stored.hex() not in repr(sk)


def test_dh_keys_of_other_suite_refused() -> None:
    p384, x25519 = Dh(labels.SUITE_CNSA2, "p384"), Dh(labels.SUITE_XWING, "x25519")
    for dh, foreign in ((p384, x25519.generate()), (x25519, p384.generate())):
        with pytest.raises(InvalidKey):
            dh.exchange(foreign, dh.public_key_bytes(dh.generate()))
        with pytest.raises(InvalidKey):
            dh.private_key_bytes(foreign)
        with pytest.raises(InvalidKey):
            dh.check_public(foreign.public)


def test_dh_wrong_length_public_key(dh: Dh) -> None:
    pk = dh.public_key_bytes(dh.generate())
    for bad in (pk[:-1], pk + b"\x00", b""):
        with pytest.raises(InvalidKey):
            dh.check_public(bad)
        with pytest.raises(InvalidKey):
            dh.exchange(dh.generate(), bad)


def test_p384_invalid_points_refused() -> None:
    dh = Dh(labels.SUITE_CNSA2, "p384")
    pk = dh.public_key_bytes(dh.generate())
    off_curve = pk[:-1] + bytes([pk[-1] ^ 0x01])
    p = 2**384 - 2**128 - 2**96 + 2**32 - 1
    x_too_big = b"\x04" + p.to_bytes(48, "big") + pk[49:]
    for bad in (off_curve, b"\x04" + bytes(96), x_too_big, b"\x02" + pk[1:], b"\x06" + pk[1:]):
        with pytest.raises(InvalidKey):
            dh.check_public(bad)
        with pytest.raises(InvalidKey):
            dh.exchange(dh.generate(), bad)


# Low-order points of Curve25519 (u-coordinates, little-endian), which force an all-zero
# shared secret: 0, 1, the two points of order 8, and p-1, p, p+1 (non-canonical forms).
X25519_LOW_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


@pytest.mark.parametrize("point", X25519_LOW_ORDER)
def test_x25519_low_order_points_refused(point: str) -> None:
    dh = Dh(labels.SUITE_XWING, "x25519")
    with pytest.raises(InvalidKey):
        dh.exchange(dh.generate(), bytes.fromhex(point))
    with pytest.raises(InvalidKey):
        dh.check_public(bytes.fromhex(point))  # a bundle or identity naming it is refused
    high_bit = bytes.fromhex(point)[:31] + bytes([bytes.fromhex(point)[31] | 0x80])
    with pytest.raises(InvalidKey):
        dh.check_public(high_bit)


def test_x25519_keys_of_large_order_pass_the_check() -> None:
    dh = Dh(labels.SUITE_XWING, "x25519")
    for _ in range(32):
        dh.check_public(dh.generate().public)


@pytest.mark.parametrize("scalar", [0, 2**384 - 1])
def test_p384_private_scalar_out_of_range(scalar: int) -> None:
    with pytest.raises(InvalidKey):
        Dh(labels.SUITE_CNSA2, "p384").private_key_from_bytes(scalar.to_bytes(48, "big"))


def test_dh_unknown_group() -> None:
    with pytest.raises(ValueError, match="unsupported group"):
        Dh(labels.SUITE_XWING, "x448")


# --- AEAD ------------------------------------------------------------------------------------

AEADS = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"]


@pytest.mark.parametrize("name", AEADS)
def test_aead_round_trip_and_tampering(name: str) -> None:
    aead = Aead(name)
    key, nonce = bytes(range(aead.key_len)), bytes(range(aead.nonce_len))
    ct = aead.seal(key, nonce, b"plaintext", b"aad")
    assert len(ct) == len(b"plaintext") + aead.tag_len
    assert aead.open(key, nonce, ct, b"aad") == b"plaintext"
    flipped_ct = bytes([ct[0] ^ 1]) + ct[1:]
    flipped_tag = ct[:-1] + bytes([ct[-1] ^ 1])
    other_key = bytes(aead.key_len)
    other_nonce = bytes(aead.nonce_len)
    for args in (
        (key, nonce, flipped_ct, b"aad"),
        (key, nonce, flipped_tag, b"aad"),
        (key, nonce, ct, b"aae"),
        (key, nonce, ct[:-1], b"aad"),
        (key, nonce, b"", b"aad"),
        (key, other_nonce, ct, b"aad"),
        (other_key, nonce, ct, b"aad"),
        (key, nonce[:-1], ct, b"aad"),
    ):
        with pytest.raises(DecryptionFailed):
            aead.open(*args)


@pytest.mark.parametrize("name", AEADS)
def test_aead_wrong_key_or_nonce_length_on_seal(name: str) -> None:
    aead = Aead(name)
    with pytest.raises(InvalidKey):
        aead.seal(bytes(aead.key_len - 1), bytes(12), b"", b"")
    with pytest.raises(InvalidKey):
        aead.seal(bytes(aead.key_len), bytes(11), b"", b"")


def test_decryption_failed_is_opaque() -> None:
    assert str(DecryptionFailed("tag mismatch at byte 3")) == "decryption failed"


def test_aead_unknown() -> None:
    with pytest.raises(ValueError, match="unsupported AEAD"):
        Aead("aes-128-cbc")


# --- HKDF and HMAC ---------------------------------------------------------------------------

# RFC 5869, Appendix A.1 (Test Case 1: basic test case with SHA-256).
RFC5869_A1 = {
    "ikm": "0b" * 22,
    "salt": "000102030405060708090a0b0c",
    "info": "f0f1f2f3f4f5f6f7f8f9",
    "length": 42,
    "prk": "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    "okm": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
}
# RFC 5869, Appendix A.3 (Test Case 3: SHA-256 with zero-length salt and info).
RFC5869_A3 = {
    "ikm": "0b" * 22,
    "salt": "",
    "info": "",
    "length": 42,
    "prk": "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    "okm": "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
}


@pytest.mark.parametrize("case", [RFC5869_A1, RFC5869_A3], ids=["A.1", "A.3"])
def test_hkdf_rfc5869(case: dict[str, str | int]) -> None:
    kdf = Kdf("sha256")
    ikm, salt = bytes.fromhex(str(case["ikm"])), bytes.fromhex(str(case["salt"]))
    info, length = bytes.fromhex(str(case["info"])), int(case["length"])
    prk = kdf.extract(salt, ikm)
    assert prk.hex() == case["prk"]
    assert kdf.expand(prk, info, length).hex() == case["okm"]
    assert kdf.derive(ikm, salt, info, length).hex() == case["okm"]


# RFC 4231, section 4.3 (Test Case 2: key "Jefe").
RFC4231_CASE2 = {
    "sha256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    "sha384": "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
    "8e2240ca5e69e2c78b3239ecfab21649",
}


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_hmac_rfc4231(hash_name: str) -> None:
    kdf = Kdf(hash_name)
    assert kdf.hmac(b"Jefe", b"what do ya want for nothing?").hex() == RFC4231_CASE2[hash_name]
    assert kdf.hash_len == {"sha256": 32, "sha384": 48}[hash_name]
    assert kdf.hash(b"abc") == hashlib.new(hash_name, b"abc").digest()


def test_kdf_unknown_hash() -> None:
    with pytest.raises(ValueError, match="unsupported hash"):
        Kdf("md5")


def test_constant_time_equal() -> None:
    assert constant_time_equal(b"abc", b"abc")
    assert not constant_time_equal(b"abc", b"abd")
    assert not constant_time_equal(b"abc", b"ab")
