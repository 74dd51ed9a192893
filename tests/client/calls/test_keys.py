"""The call key schedule (client/calls/keys.py): derivation, KIDs, rekeying, refusals."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.calls import keys
from client.calls.errors import MediaKeyError
from client.calls.keys import CallSecret, Direction, MediaCrypto
from suites import labels, sframe
from suites.errors import DecryptionFailed

SECRET = CallSecret(bytes.fromhex("5c" * 16 + "a3" * 16))
UP = Direction.CALLER_TO_CALLEE
DOWN = Direction.CALLEE_TO_CALLER
META = b"frame-position"


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA512(), length=64, salt=None, info=info).derive(ikm)


def test_derivation_matches_hkdf_sha512_with_the_labels() -> None:
    chain0 = _hkdf(SECRET.secret, labels.CALL_DIRECTION_INFO + b"\x01")
    chain1 = _hkdf(chain0, labels.CALL_NEXT_EPOCH_INFO)
    assert keys.chain_start(SECRET, DOWN) == chain0
    assert keys.next_chain(chain0) == chain1
    assert keys.epoch_base_key(SECRET, DOWN, 1) == _hkdf(chain1, labels.CALL_SFRAME_BASE_INFO)


def test_keys_distinct_per_direction_and_epoch() -> None:
    pairs = list(itertools.product(Direction, range(4)))
    base_keys = {keys.epoch_base_key(SECRET, d, e) for d, e in pairs}
    kids = {keys.kid(e, d) for d, e in pairs}
    assert len(base_keys) == len(kids) == len(pairs)
    assert SECRET.secret not in {k[:32] for k in base_keys}
    other = CallSecret(bytes(32))
    assert keys.epoch_base_key(other, UP, 0) not in base_keys


def test_kid_layout() -> None:
    assert keys.kid(0, UP) == 0
    assert keys.kid(0, DOWN) == 1
    assert keys.kid(7, DOWN) == 15
    assert (keys.kid_epoch(15), keys.kid_direction(15)) == (7, DOWN)
    assert UP.reverse is DOWN
    with pytest.raises(MediaKeyError):
        keys.kid(-1, UP)


def test_call_secret() -> None:
    assert CallSecret.generate(lambda n: b"\x07" * n).secret == b"\x07" * 32
    assert "5c5c" not in repr(SECRET)
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(MediaKeyError):
            CallSecret.from_bytes(bad)


def _pair(**kw: float) -> tuple[MediaCrypto, MediaCrypto]:
    return MediaCrypto(SECRET, UP, now=0.0, **kw), MediaCrypto(SECRET, DOWN, now=0.0, **kw)


def test_both_directions_open_and_frames_are_sframe() -> None:
    caller, callee = _pair()
    up = caller.protect(META, b"hello", now=1.0)
    down = callee.protect(META, b"hi", now=1.0)
    assert sframe.decode_header(up).kid == keys.kid(0, UP)
    assert callee.unprotect(up, META, now=1.0) == b"hello"
    assert caller.unprotect(down, META, now=1.0) == b"hi"


def test_refuses_tamper_wrong_metadata_replay_and_reflection() -> None:
    caller, callee = _pair()
    frame = caller.protect(META, b"payload", now=0.0)
    with pytest.raises(DecryptionFailed):
        callee.unprotect(frame[:-1] + bytes([frame[-1] ^ 1]), META, now=0.0)
    with pytest.raises(DecryptionFailed):
        callee.unprotect(frame, META + b"x", now=0.0)
    assert callee.unprotect(frame, META, now=0.0) == b"payload"
    with pytest.raises(sframe.ReplayError):
        callee.unprotect(frame, META, now=0.0)
    with pytest.raises(sframe.KeyUsageError):  # our own frame reflected back
        caller.unprotect(frame, META, now=0.0)


def test_rekey_every_interval_and_grace_for_old_epoch() -> None:
    caller, callee = _pair()
    old = caller.protect(META, b"epoch 0", now=299.9)
    new = caller.protect(META, b"epoch 1", now=300.0)
    assert caller.send_epoch == 1
    assert sframe.decode_header(new).kid == keys.kid(1, UP)
    assert sframe.decode_header(new).ctr == 0
    assert callee.unprotect(new, META, now=300.1) == b"epoch 1"
    assert callee.recv_epoch == 1
    assert callee.unprotect(old, META, now=300.2) == b"epoch 0"  # in flight, within grace
    late = caller.protect(META, b"x", now=1300.0)  # epoch 4: skipped ahead
    assert callee.unprotect(late, META, now=1300.0) == b"x"
    assert callee.recv_epoch == 4


def test_old_epoch_key_removed_after_grace() -> None:
    caller, callee = _pair(grace=5.0)
    e0 = [caller.protect(META, b"a", now=0.0), caller.protect(META, b"b", now=0.0)]
    callee.unprotect(caller.protect(META, b"c", now=300.0), META, now=300.0)
    assert callee.unprotect(e0[0], META, now=304.9) == b"a"
    with pytest.raises(sframe.UnknownKidError):
        callee.unprotect(e0[1], META, now=305.0)


def test_forged_future_epoch_does_not_move_the_receiver() -> None:
    caller, callee = _pair()
    future = caller.protect(META, b"f", now=600.0)
    forged = future[:-1] + bytes([future[-1] ^ 0x80])
    with pytest.raises(DecryptionFailed):
        callee.unprotect(forged, META, now=1.0)
    assert callee.recv_epoch == 0
    assert callee.unprotect(future, META, now=1.0) == b"f"


def test_too_far_ahead_is_unknown() -> None:
    caller, callee = _pair(rekey_interval=1.0)
    far = caller.protect(META, b"far", now=keys.MAX_EPOCH_SKIP + 1.0)
    with pytest.raises(sframe.UnknownKidError):
        callee.unprotect(far, META, now=0.0)


def test_clock_going_back_keeps_the_epoch() -> None:
    caller, _ = _pair(rekey_interval=10.0)
    caller.protect(META, b"a", now=25.0)
    caller.protect(META, b"b", now=5.0)
    assert caller.send_epoch == 2


@pytest.mark.parametrize(("interval", "grace"), [(0.0, 1.0), (-1.0, 1.0), (1.0, -0.1)])
def test_bad_schedule_parameters(interval: float, grace: float) -> None:
    with pytest.raises(MediaKeyError):
        MediaCrypto(SECRET, UP, now=0.0, rekey_interval=interval, grace=grace)


def test_call_labels_are_unique_among_all_labels() -> None:
    all_labels = [v for k, v in vars(labels).items() if k.isupper() and isinstance(v, bytes)]
    ours = {labels.CALL_DIRECTION_INFO, labels.CALL_NEXT_EPOCH_INFO, labels.CALL_SFRAME_BASE_INFO}
    assert sum(v in ours for v in all_labels) == len(ours)
