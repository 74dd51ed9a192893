"""Hybrid signatures (suites/sig.py): construction, encodings, and failing closed.

The construction test rebuilds M' = Prefix || Label || len(ctx) || ctx || PH(M) here, from
draft-ietf-lamps-pq-composite-sigs ("Prefix, Label, and CTX"), and checks each half with the
bare primitive, so a change to the message representative cannot go unnoticed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suites import labels
from suites.errors import InvalidKey, InvalidSignature, SuiteError, UnknownSuite
from suites.sig import HybridSig, InvalidContextError, SigPrivateKey

P384_N = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
CTX_A = labels.CTX_TEST
CTX_B = labels.CTX_TEST + b"/other"
MSG = b"attack at dawn"
SUITES = (labels.SUITE_CNSA2, labels.SUITE_XWING)
# (ML-DSA pk, ML-DSA sig, classical pk, classical sig, private) lengths by suite
SIZES = {labels.SUITE_CNSA2: (2592, 4627, 97, 96, 80), labels.SUITE_XWING: (1952, 3309, 32, 64, 64)}


@dataclass
class Keys:
    sig: HybridSig
    sk: SigPrivateKey
    pk: bytes
    other_sk: SigPrivateKey
    other_pk: bytes


_KEYS: dict[str, Keys] = {}


@pytest.fixture(params=SUITES)
def keys(request: pytest.FixtureRequest) -> Keys:
    """Two key pairs per suite, made once (key generation is the slow part)."""
    name: str = request.param
    if name not in _KEYS:
        sig = HybridSig(name)
        sk, pk = sig.generate()
        other_sk, other_pk = sig.generate()
        _KEYS[name] = Keys(sig, sk, pk, other_sk, other_pk)
    return _KEYS[name]


def _split(keys: Keys, blob: bytes, *, public: bool) -> tuple[bytes, bytes]:
    size = SIZES[keys.sig.suite][0 if public else 1]
    return blob[:size], blob[size:]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- round trip and sizes ------------------------------------------------------------------


def test_sign_verify_round_trip(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    keys.sig.verify(keys.pk, MSG, signature, CTX_A)


def test_sizes(keys: Keys) -> None:
    mldsa_pk, mldsa_sig, trad_pk, trad_sig, private = SIZES[keys.sig.suite]
    assert keys.sig.public_len == len(keys.pk) == mldsa_pk + trad_pk
    assert keys.sig.signature_len == mldsa_sig + trad_sig
    assert len(keys.sig.sign(keys.sk, b"", CTX_A)) == keys.sig.signature_len
    assert len(keys.sig.private_key_bytes(keys.sk)) == keys.sig.private_len == private


def test_private_key_storage_round_trip(keys: Keys) -> None:
    stored = keys.sig.private_key_bytes(keys.sk)
    loaded = keys.sig.private_key_from_bytes(stored)
    assert keys.sig.public_key_bytes(loaded) == keys.pk
    assert stored[:32] == keys.sk.mldsa_seed
    keys.sig.verify(keys.pk, MSG, keys.sig.sign(loaded, MSG, CTX_A), CTX_A)


def test_deterministic_public_key_from_storage(keys: Keys) -> None:
    """The same stored bytes always give the same public key (seed-based storage)."""
    stored = bytes(range(32)) + bytes([7]) * (keys.sig.private_len - 32)
    first = keys.sig.private_key_from_bytes(stored)
    second = keys.sig.private_key_from_bytes(stored)
    assert first.public == second.public
    assert first != second  # eq=False: keys are not compared by value


def test_repr_hides_secrets(keys: Keys) -> None:
    text = repr(keys.sk) + str(keys.sk)
    assert keys.sk.mldsa_seed.hex() not in text
    assert keys.sk.classical.hex() not in text
    assert keys.sig.suite in text


def test_unknown_suite() -> None:
    with pytest.raises(UnknownSuite):
        HybridSig("rsa")


# --- the construction of draft-ietf-lamps-pq-composite-sigs ----------------------------------


_LABEL_AND_PH = {
    labels.SUITE_CNSA2: (b"sealrelay-sig-v1/MLDSA87-ECDSA-P384-SHA384", hashlib.sha384),
    labels.SUITE_XWING: (b"sealrelay-sig-v1/MLDSA65-Ed25519-SHA256", hashlib.sha256),
}


def _m_prime(suite: str, message: bytes, ctx: bytes) -> bytes:
    label, ph = _LABEL_AND_PH[suite]
    prefix = bytes.fromhex("436F6D706F73697465416C676F726974686D5369676E61747572657332303235")
    return prefix + label + bytes([len(ctx)]) + ctx + ph(message).digest()


def test_each_half_signs_the_message_representative(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    mldsa_pk, trad_pk = _split(keys, keys.pk, public=True)
    mldsa_sig, trad_sig = _split(keys, signature, public=False)
    m_prime = _m_prime(keys.sig.suite, MSG, CTX_A)
    label = _LABEL_AND_PH[keys.sig.suite][0]
    if keys.sig.suite == labels.SUITE_CNSA2:
        mldsa.MLDSA87PublicKey.from_public_bytes(mldsa_pk).verify(mldsa_sig, m_prime, label)
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), trad_pk)
        r, s = int.from_bytes(trad_sig[:48], "big"), int.from_bytes(trad_sig[48:], "big")
        assert s <= P384_N // 2  # low-S
        point.verify(encode_dss_signature(r, s), m_prime, ec.ECDSA(hashes.SHA384()))
    else:
        mldsa.MLDSA65PublicKey.from_public_bytes(mldsa_pk).verify(mldsa_sig, m_prime, label)
        ed25519.Ed25519PublicKey.from_public_bytes(trad_pk).verify(trad_sig, m_prime)


def test_mldsa_half_is_not_a_plain_mldsa_signature(keys: Keys) -> None:
    """Stripped out, the ML-DSA half does not verify on M with an empty FIPS 204 context."""
    mldsa_pk, _ = _split(keys, keys.pk, public=True)
    mldsa_sig, _ = _split(keys, keys.sig.sign(keys.sk, MSG, CTX_A), public=False)
    cls = mldsa.MLDSA87PublicKey if keys.sig.suite == labels.SUITE_CNSA2 else mldsa.MLDSA65PublicKey
    public = cls.from_public_bytes(mldsa_pk)
    for message, ctx in ((MSG, b""), (MSG, CTX_A), (_m_prime(keys.sig.suite, MSG, CTX_A), b"")):
        with pytest.raises(CryptoInvalidSignature):
            public.verify(mldsa_sig, message, ctx)


# --- contexts ------------------------------------------------------------------------------


def test_signature_under_context_a_fails_under_b(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, signature, CTX_B)


def test_context_and_message_are_not_ambiguous(keys: Keys) -> None:
    """len(ctx) is encoded, so moving bytes between ctx and message does not verify."""
    signature = keys.sig.sign(keys.sk, b"bc", b"a")
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, b"c", signature, b"ab")


@pytest.mark.parametrize("bad", [b"", bytes(256), "sealrelay/test", None])
def test_bad_context_refused(keys: Keys, bad: object) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    with pytest.raises(InvalidContextError) as sign_error:
        keys.sig.sign(keys.sk, MSG, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidContextError):
        keys.sig.verify(keys.pk, MSG, signature, bad)  # type: ignore[arg-type]
    assert isinstance(sign_error.value, ValueError)
    assert isinstance(sign_error.value, SuiteError)
    assert sign_error.value.code == "suite.invalid_context"


def test_longest_context_allowed(keys: Keys) -> None:
    ctx = bytes(range(255))
    keys.sig.verify(keys.pk, MSG, keys.sig.sign(keys.sk, MSG, ctx), ctx)


# --- negatives: corrupted, truncated, swapped -----------------------------------------------


def test_modified_message_fails(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG + b"!", signature, CTX_A)


@pytest.mark.parametrize("where", ["mldsa-first", "mldsa-middle", "classical-first", "last"])
def test_corrupted_half_fails(keys: Keys, where: str) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    split = SIZES[keys.sig.suite][1]
    index = {
        "mldsa-first": 0,
        "mldsa-middle": split // 2,
        "classical-first": split,
        "last": len(signature) - 1,
    }[where]
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, _flip(signature, index), CTX_A)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_byte_corruption_fails(keys: Keys, data: st.DataObject) -> None:
    signature = _signature(keys)
    index = data.draw(st.integers(0, len(signature) - 1))
    mask = data.draw(st.integers(1, 255))
    corrupted = signature[:index] + bytes([signature[index] ^ mask]) + signature[index + 1 :]
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, corrupted, CTX_A)


_SIGNATURES: dict[str, bytes] = {}


def _signature(keys: Keys) -> bytes:
    if keys.sig.suite not in _SIGNATURES:
        _SIGNATURES[keys.sig.suite] = keys.sig.sign(keys.sk, MSG, CTX_A)
    return _SIGNATURES[keys.sig.suite]


def test_truncated_or_stripped_signature_fails(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    mldsa_sig, trad_sig = _split(keys, signature, public=False)
    for bad in (mldsa_sig, trad_sig, signature[:-1], signature + b"\x00", b"", mldsa_sig * 2):
        with pytest.raises(InvalidSignature):
            keys.sig.verify(keys.pk, MSG, bad, CTX_A)


def test_non_bytes_signature_fails(keys: Keys) -> None:
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, None, CTX_A)  # type: ignore[arg-type]


def test_halves_swapped_from_other_signatures_fail(keys: Keys) -> None:
    good = keys.sig.sign(keys.sk, MSG, CTX_A)
    other_message = keys.sig.sign(keys.sk, b"retreat", CTX_A)
    other_context = keys.sig.sign(keys.sk, MSG, CTX_B)
    other_key = keys.sig.sign(keys.other_sk, MSG, CTX_A)
    good_pq, good_trad = _split(keys, good, public=False)
    for donor in (other_message, other_context, other_key):
        donor_pq, donor_trad = _split(keys, donor, public=False)
        for mixed in (good_pq + donor_trad, donor_pq + good_trad):
            with pytest.raises(InvalidSignature):
                keys.sig.verify(keys.pk, MSG, mixed, CTX_A)


def test_halves_in_wrong_order_fail(keys: Keys) -> None:
    """Classical half first: the lengths differ, so this is refused before any math."""
    mldsa_sig, trad_sig = _split(keys, keys.sig.sign(keys.sk, MSG, CTX_A), public=False)
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, trad_sig + mldsa_sig, CTX_A)


def test_public_key_with_one_half_from_another_key_fails(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    pq, trad = _split(keys, keys.pk, public=True)
    other_pq, other_trad = _split(keys, keys.other_pk, public=True)
    for mixed in (pq + other_trad, other_pq + trad):
        keys.sig.check_public(mixed)  # well formed ...
        with pytest.raises(InvalidSignature):  # ... but not the signer's
            keys.sig.verify(mixed, MSG, signature, CTX_A)


def test_signature_by_other_key_fails(keys: Keys) -> None:
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.other_pk, MSG, keys.sig.sign(keys.sk, MSG, CTX_A), CTX_A)


# --- ECDSA encoding ------------------------------------------------------------------------


def _cnsa2() -> Keys:
    keys = _KEYS.get(labels.SUITE_CNSA2)
    if keys is None:
        sig = HybridSig(labels.SUITE_CNSA2)
        sk, pk = sig.generate()
        other_sk, other_pk = sig.generate()
        keys = _KEYS[labels.SUITE_CNSA2] = Keys(sig, sk, pk, other_sk, other_pk)
    return keys


def test_ecdsa_high_s_refused() -> None:
    """(r, n - s) is a valid raw ECDSA signature, but not a canonical (low-S) one here."""
    keys = _cnsa2()
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    mldsa_sig, trad_sig = signature[:4627], signature[4627:]
    r, s = int.from_bytes(trad_sig[:48], "big"), int.from_bytes(trad_sig[48:], "big")
    high = (P384_N - s).to_bytes(48, "big")
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), keys.pk[2592:])
    m_prime = _m_prime(labels.SUITE_CNSA2, MSG, CTX_A)
    point.verify(encode_dss_signature(r, P384_N - s), m_prime, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, mldsa_sig + trad_sig[:48] + high, CTX_A)


@pytest.mark.parametrize(
    ("r", "s"), [(0, 1), (1, 0), (P384_N, 1), (1, P384_N), (2**384 - 1, 1), (1, 2**384 - 1)]
)
def test_ecdsa_out_of_range_refused(r: int, s: int) -> None:
    keys = _cnsa2()
    mldsa_sig = keys.sig.sign(keys.sk, MSG, CTX_A)[:4627]
    trad = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    with pytest.raises(InvalidSignature):
        keys.sig.verify(keys.pk, MSG, mldsa_sig + trad, CTX_A)


# --- keys: suite confusion and validation ---------------------------------------------------


def test_cnsa2_and_xwing_keys_not_interchangeable() -> None:
    cnsa2, xwing = HybridSig(labels.SUITE_CNSA2), HybridSig(labels.SUITE_XWING)
    cnsa2_sk, cnsa2_pk = cnsa2.generate()
    xwing_sk, xwing_pk = xwing.generate()
    for sig, foreign_sk, foreign_pk in ((xwing, cnsa2_sk, cnsa2_pk), (cnsa2, xwing_sk, xwing_pk)):
        with pytest.raises(InvalidKey):
            sig.sign(foreign_sk, MSG, CTX_A)
        with pytest.raises(InvalidKey):
            sig.private_key_bytes(foreign_sk)
        with pytest.raises(InvalidKey):
            sig.public_key_bytes(foreign_sk)
        with pytest.raises(InvalidKey):
            sig.check_public(foreign_pk)
        with pytest.raises(InvalidKey):
            sig.verify(foreign_pk, MSG, b"\x00" * sig.signature_len, CTX_A)
    # a cnsa2 signature cannot be presented as an xwing one, whatever its length
    signature = cnsa2.sign(cnsa2_sk, MSG, CTX_A)
    with pytest.raises(InvalidSignature):
        xwing.verify(xwing_pk, MSG, signature, CTX_A)


@pytest.mark.parametrize("bad", [None, "key", b"\x00" * 32])
def test_non_key_objects_refused(keys: Keys, bad: object) -> None:
    with pytest.raises(InvalidKey):
        keys.sig.sign(bad, MSG, CTX_A)  # type: ignore[arg-type]


def test_wrong_length_public_key(keys: Keys) -> None:
    signature = keys.sig.sign(keys.sk, MSG, CTX_A)
    for bad in (keys.pk[:-1], keys.pk + b"\x00", b"", keys.pk[: SIZES[keys.sig.suite][0]]):
        with pytest.raises(InvalidKey):
            keys.sig.check_public(bad)
        with pytest.raises(InvalidKey):
            keys.sig.verify(bad, MSG, signature, CTX_A)


def test_p384_half_must_be_a_valid_uncompressed_point() -> None:
    keys = _cnsa2()
    off_curve = keys.pk[:-1] + bytes([keys.pk[-1] ^ 0x01])
    compressed_prefix = keys.pk[:2592] + b"\x02" + keys.pk[2593:]
    for bad in (off_curve, compressed_prefix):
        with pytest.raises(InvalidKey):
            keys.sig.check_public(bad)
        with pytest.raises(InvalidKey):
            keys.sig.verify(bad, MSG, keys.sig.sign(keys.sk, MSG, CTX_A), CTX_A)


def test_private_key_from_bytes_validation(keys: Keys) -> None:
    for bad in (b"", bytes(keys.sig.private_len - 1), bytes(keys.sig.private_len + 1)):
        with pytest.raises(InvalidKey):
            keys.sig.private_key_from_bytes(bad)


@pytest.mark.parametrize("scalar", [0, P384_N, 2**384 - 1])
def test_p384_scalar_out_of_range(scalar: int) -> None:
    with pytest.raises(InvalidKey):
        HybridSig(labels.SUITE_CNSA2).private_key_from_bytes(bytes(32) + scalar.to_bytes(48, "big"))
