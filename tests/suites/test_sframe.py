"""SFrame (RFC 9605) against the Appendix C vectors, plus context and parser properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suites import labels
from suites import sframe as sf
from suites.errors import DecryptionFailed, SuiteError
from suites.kdf import Kdf
from tests.vectorfiles import load_vectors, unhex

_VECTORS = load_vectors("sframe-rfc9605.json")
_U64 = st.integers(0, sf.MAX_VALUE)


def _cases(key: str, ident: str) -> list[Any]:
    return [pytest.param(case, id=ident.format(**case)) for case in _VECTORS[key]]


def test_vector_counts() -> None:
    assert len(_VECTORS["header"]) == 289
    assert len(_VECTORS["aes_ctr_hmac"]) == 3
    assert sorted(c["cipher_suite"] for c in _VECTORS["sframe"]) == [1, 2, 3, 4, 5]


# --- header (section 4.3, Appendix C.1) -------------------------------------------------------


@pytest.mark.parametrize("case", _cases("header", "kid{kid}-ctr{ctr}"))
def test_header_vector(case: dict[str, Any]) -> None:
    encoded = unhex(case["encoded"])
    assert sf.encode_header(case["kid"], case["ctr"]) == encoded
    header = sf.decode_header(encoded + b"\xff\x00payload")
    assert header == (case["kid"], case["ctr"], encoded)


@given(kid=_U64, ctr=_U64)
def test_header_round_trip(kid: int, ctr: int) -> None:
    encoded = sf.encode_header(kid, ctr)
    assert sf.decode_header(encoded) == (kid, ctr, encoded)
    assert len(encoded) == 1 + sum((v.bit_length() + 7) // 8 for v in (kid, ctr) if v >= 8)


@settings(max_examples=500)
@given(data=st.binary(max_size=20))
def test_header_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        header = sf.decode_header(data)
    except sf.HeaderError:  # anything else propagates and fails the test
        return
    # Whatever parses is canonical: re-encoding gives the same bytes.
    assert sf.encode_header(header.kid, header.ctr) == header.encoded
    assert data.startswith(header.encoded)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x08",  # CTR of 1 byte announced, none present
        b"\x80",  # KID of 1 byte announced, none present
        b"\xf0" + bytes(7),  # KID of 8 bytes announced, 7 present
        b"\x80\x05",  # KID 5 in extended form: not minimal
        b"\x08\x07",  # CTR 7 in extended form: not minimal
        b"\x90\x00\x08",  # 2-byte KID with a leading zero
        b"\x09\x00\xff",  # 2-byte CTR with a leading zero
    ],
)
def test_malformed_headers_refused(data: bytes) -> None:
    with pytest.raises(sf.HeaderError):
        sf.decode_header(data)


@pytest.mark.parametrize("value", [-1, sf.MAX_VALUE + 1, True, 1.0, "1"])
def test_header_values_out_of_range(value: object) -> None:
    with pytest.raises(sf.HeaderError):
        sf.encode_header(value, 0)  # type: ignore[arg-type]
    with pytest.raises(sf.HeaderError):
        sf.encode_header(0, value)  # type: ignore[arg-type]


# --- AES-CTR + HMAC AEAD (section 4.5.1, Appendix C.2) --------------------------------------


@pytest.mark.parametrize("case", _cases("aes_ctr_hmac", "suite{cipher_suite}"))
def test_aes_ctr_hmac_vector(case: dict[str, Any]) -> None:
    suite = sf.cipher_suite(case["cipher_suite"])
    key, nonce, aad = unhex(case["key"]), unhex(case["nonce"]), unhex(case["aad"])
    pt, ct = unhex(case["pt"]), unhex(case["ct"])
    assert suite.nka is not None
    assert (key[: suite.nka], key[suite.nka :]) == (unhex(case["enc_key"]), unhex(case["auth_key"]))
    assert sf.aead_seal(suite, key, nonce, aad, pt) == ct
    assert len(ct) == len(pt) + suite.nt
    assert sf.aead_open(suite, key, nonce, aad, ct) == pt
    for bad_ct, bad_aad in ((ct[:-1] + bytes([ct[-1] ^ 1]), aad), (ct, aad + b"x"), (ct[:-1], aad)):
        with pytest.raises(DecryptionFailed):
            sf.aead_open(suite, key, nonce, bad_aad, bad_ct)
    with pytest.raises(DecryptionFailed):
        sf.aead_open(suite, key, nonce, aad, ct[: suite.nt - 1])


# --- key derivation and frames (sections 4.4.2-4.4.4, Appendix C.3) ---------------------------


@pytest.mark.parametrize("case", _cases("sframe", "suite{cipher_suite}"))
def test_sframe_vector(case: dict[str, Any]) -> None:
    suite = sf.cipher_suite(case["cipher_suite"])
    kid, ctr, base_key = case["kid"], case["ctr"], unhex(case["base_key"])
    metadata, pt, ct = unhex(case["metadata"]), unhex(case["pt"]), unhex(case["ct"])
    suffix = kid.to_bytes(8, "big") + suite.suite_id.to_bytes(2, "big")
    assert labels.SFRAME_KEY_LABEL + suffix == unhex(case["sframe_key_label"])
    assert labels.SFRAME_SALT_LABEL + suffix == unhex(case["sframe_salt_label"])
    assert Kdf(suite.hash_name).extract(b"", base_key) == unhex(case["sframe_secret"])
    key, salt = sf.derive_key_salt(suite, kid, base_key)
    assert (key, salt) == (unhex(case["sframe_key"]), unhex(case["sframe_salt"]))
    assert sf.make_nonce(salt, ctr) == unhex(case["nonce"])
    assert sf.encode_header(kid, ctr) + metadata == unhex(case["aad"])
    assert sf.encrypt(suite, key, salt, kid, ctr, metadata, pt) == ct

    sender = sf.SFrameContext(case["cipher_suite"])
    sender.add_send_key(kid, base_key)
    assert sender.protect(kid, metadata, pt, ctr=ctr) == ct
    receiver = sf.SFrameContext(case["cipher_suite"])
    receiver.add_recv_key(kid, base_key)
    assert receiver.unprotect(ct, metadata) == (kid, ctr, pt)


@pytest.mark.parametrize("case", _cases("sframe", "suite{cipher_suite}"))
def test_sframe_vector_tampering_fails(case: dict[str, Any]) -> None:
    kid, ct, metadata = case["kid"], unhex(case["ct"]), unhex(case["metadata"])
    receiver = sf.SFrameContext(case["cipher_suite"])
    receiver.add_recv_key(kid, unhex(case["base_key"]))
    header_len = len(sf.encode_header(kid, case["ctr"]))
    for index in (header_len - 1, header_len, len(ct) - 1):  # CTR, ciphertext, tag
        tampered = ct[:index] + bytes([ct[index] ^ 0x01]) + ct[index + 1 :]
        with pytest.raises(DecryptionFailed):
            receiver.unprotect(tampered, metadata)
    for bad_metadata in (metadata + b"\x00", metadata[:-1], b""):
        with pytest.raises(DecryptionFailed):
            receiver.unprotect(ct, bad_metadata)
    with pytest.raises(DecryptionFailed):
        receiver.unprotect(ct[:header_len], metadata)


# --- SFrameContext --------------------------------------------------------------------------

BASE_KEY = bytes(range(16))


def _pair(suite: int = 4, **kwargs: Any) -> tuple[sf.SFrameContext, sf.SFrameContext]:
    sender, receiver = sf.SFrameContext(suite), sf.SFrameContext(suite, **kwargs)
    sender.add_send_key(9, BASE_KEY)
    receiver.add_recv_key(9, BASE_KEY)
    return sender, receiver


@settings(max_examples=50, deadline=None)
@given(
    suite=st.sampled_from(sorted(sf.CIPHER_SUITES)),
    kid=_U64,
    metadata=st.binary(max_size=64),
    plaintext=st.binary(max_size=512),
)
def test_protect_unprotect_round_trip(
    suite: int, kid: int, metadata: bytes, plaintext: bytes
) -> None:
    sender, receiver = sf.SFrameContext(suite), sf.SFrameContext(suite)
    sender.add_send_key(kid, BASE_KEY)
    receiver.add_recv_key(kid, BASE_KEY)
    frame = sender.protect(kid, metadata, plaintext)
    assert len(frame) == len(sf.encode_header(kid, 0)) + len(plaintext) + sf.CIPHER_SUITES[suite].nt
    assert receiver.unprotect(frame, metadata) == (kid, 0, plaintext)


def test_counter_advances_and_is_never_reused() -> None:
    sender, receiver = _pair()
    ctrs = [receiver.unprotect(sender.protect(9, b"", b"x"), b"")[1] for _ in range(3)]
    assert ctrs == [0, 1, 2]
    assert sender.next_ctr(9) == 3
    frame = sender.protect(9, b"", b"x", ctr=100)
    assert receiver.unprotect(frame, b"")[1] == 100
    assert sender.next_ctr(9) == 101
    for used in (0, 2, 100):
        with pytest.raises(sf.CounterError):
            sender.protect(9, b"", b"x", ctr=used)


def test_counter_exhaustion() -> None:
    sender = sf.SFrameContext(5)
    sender.add_send_key(1, BASE_KEY, next_ctr=sf.MAX_VALUE)
    sender.protect(1, b"", b"last")
    with pytest.raises(sf.CounterError):
        sender.protect(1, b"", b"one too many")


def test_key_usage_rules() -> None:
    ctx = sf.SFrameContext(4)
    ctx.add_send_key(1, BASE_KEY)
    ctx.add_recv_key(2, BASE_KEY)
    with pytest.raises(sf.KeyUsageError):
        ctx.add_send_key(1, BASE_KEY)  # would restart the counter
    with pytest.raises(sf.KeyUsageError):
        ctx.add_recv_key(1, BASE_KEY)
    with pytest.raises(sf.KeyUsageError):
        ctx.add_send_key(2, BASE_KEY)
    with pytest.raises(sf.KeyUsageError):
        ctx.protect(2, b"", b"x")
    own = ctx.protect(1, b"", b"x")
    with pytest.raises(sf.KeyUsageError):
        ctx.unprotect(own, b"")  # a send key never decrypts
    ctx.add_recv_key(2, bytes(16))  # a receive key may be replaced
    ctx.remove_key(1)
    ctx.add_send_key(1, bytes(16))


def test_unknown_kid() -> None:
    sender, receiver = _pair()
    receiver.remove_key(9)
    frame = sender.protect(9, b"", b"x")
    with pytest.raises(sf.UnknownKidError) as error:
        receiver.unprotect(frame, b"")
    assert error.value.code == "sframe.unknown_kid"
    with pytest.raises(sf.UnknownKidError):
        sender.protect(10, b"", b"x")


def test_wrong_base_key_fails_authentication() -> None:
    sender = sf.SFrameContext(4)
    sender.add_send_key(9, BASE_KEY)
    receiver = sf.SFrameContext(4)
    receiver.add_recv_key(9, bytes(16))
    with pytest.raises(DecryptionFailed):
        receiver.unprotect(sender.protect(9, b"", b"x"), b"")


def test_cipher_suite_binds_the_keys() -> None:
    """The same base key under suites 1 and 4 derives different keys (suite id in labels)."""
    sender = sf.SFrameContext(1)
    sender.add_send_key(9, BASE_KEY)
    receiver = sf.SFrameContext(2)  # same key sizes, different suite id and tag length
    receiver.add_recv_key(9, BASE_KEY)
    with pytest.raises(DecryptionFailed):
        receiver.unprotect(sender.protect(9, b"", b"x"), b"")


@pytest.mark.parametrize("suite_id", [0, 6, 7, 0xFFFF, "4"])
def test_unsupported_cipher_suite(suite_id: object) -> None:
    with pytest.raises(sf.CipherSuiteError):
        sf.SFrameContext(suite_id)  # type: ignore[arg-type]


def test_errors_have_stable_codes() -> None:
    errors = [
        sf.SFrameError,
        sf.HeaderError,
        sf.UnknownKidError,
        sf.KeyUsageError,
        sf.CounterError,
        sf.ReplayError,
        sf.CipherSuiteError,
    ]
    codes = [error.code for error in errors]
    assert len(set(codes)) == len(codes)
    assert all(code.startswith("sframe.") for code in codes)
    assert all(issubclass(error, SuiteError) for error in errors)
    assert not issubclass(DecryptionFailed, sf.SFrameError)


# --- anti-replay hook -------------------------------------------------------------------------


def test_without_guard_replays_are_the_applications_business() -> None:
    sender, receiver = _pair()
    frame = sender.protect(9, b"", b"x")
    assert receiver.unprotect(frame, b"") == receiver.unprotect(frame, b"")


def test_replay_window_refuses_replays() -> None:
    sender, receiver = _pair(replay_guard=sf.ReplayWindow(size=4))
    frames = [sender.protect(9, b"", bytes([i])) for i in range(8)]
    receiver.unprotect(frames[7], b"")
    receiver.unprotect(frames[5], b"")  # late but inside the window
    for stale in (frames[7], frames[5], frames[3]):  # replayed, replayed, too old
        with pytest.raises(sf.ReplayError):
            receiver.unprotect(stale, b"")
    receiver.unprotect(frames[4], b"")


def test_forgery_does_not_advance_the_window() -> None:
    sender, receiver = _pair(replay_guard=sf.ReplayWindow())
    frame = sender.protect(9, b"", b"x")
    forged = frame[:-1] + bytes([frame[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        receiver.unprotect(forged, b"")
    assert receiver.unprotect(frame, b"")[2] == b"x"


@given(ctrs=st.lists(st.integers(0, 300), max_size=60), size=st.integers(1, 70))
def test_replay_window_matches_model(ctrs: list[int], size: int) -> None:
    window = sf.ReplayWindow(size)
    seen: set[int] = set()
    for ctr in ctrs:
        highest = max(seen, default=-1)
        expected = ctr not in seen and (not seen or ctr > highest - size)
        assert window.check(3, ctr) == expected
        if expected:
            window.accept(3, ctr)
            seen.add(ctr)
