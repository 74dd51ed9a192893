"""Meeting key-schedule and frame-signature formats (wire/meeting.py): round trips, field
rules and bounds, and decoding any bytes raises only WireError."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wire import WireError, encode, message_info
from wire.errors import CODES, INVALID_VALUE, TOO_LARGE
from wire.meeting import (
    FINGERPRINT_LEN,
    FRAME_DIGEST_LEN,
    MAX_PARTICIPANTS,
    MAX_SIGNED_FRAMES,
    MESSAGE_TYPES,
    EpochCause,
    FrameDigestBody,
    FrameSignature,
    MeetingAck,
    MeetingEpoch,
    MeetingEpochKey,
    MeetingLeave,
    MeetingMessage,
    MeetingSwitch,
    RosterBody,
    RosterEntry,
    SealedRoster,
    SignedRoster,
    decode_meeting,
)

MID = bytes(range(16))
FP = b"\xf0" * FINGERPRINT_LEN


def entry(pid: int) -> RosterEntry:
    return RosterEntry(pid, f"user{pid}@a.example", 1, FP)


def roster(*pids: int, leader: int | None = None, epoch: int = 3) -> SignedRoster:
    body = RosterBody(
        MID, epoch, pids[0] if leader is None else leader, EpochCause.JOIN, 1_700_000_000_000,
        tuple(entry(p) for p in pids),
    )  # fmt: skip
    return SignedRoster(body, b"leader key", b"signature")


def digest_body(**changes: Any) -> FrameDigestBody:
    fields: dict[str, Any] = {
        "meeting": MID, "pid": 7, "kind": 1, "layer": 2, "epoch": 4, "first": 100,
        "digests": (b"\x01" * FRAME_DIGEST_LEN,) * 3,
    }  # fmt: skip
    fields.update(changes)
    return FrameDigestBody(**fields)


entries = st.builds(
    RosterEntry,
    pid=st.integers(0, 2**32 - 1),
    address=st.text(max_size=40),
    device=st.integers(0, 2**32 - 1),
    fp=st.binary(min_size=FINGERPRINT_LEN, max_size=FINGERPRINT_LEN),
)


@st.composite
def rosters(draw: st.DrawFn) -> SignedRoster:
    pids = sorted(draw(st.sets(st.integers(0, 2**32 - 1), min_size=1, max_size=6)))
    body = RosterBody(
        draw(st.binary(min_size=16, max_size=16)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.sampled_from(pids)),
        draw(st.sampled_from(EpochCause)),
        draw(st.integers(0, 2**64 - 1)),
        tuple(RosterEntry(p, "a@b", 1, FP) for p in pids),
    )
    return SignedRoster(body, draw(st.binary(max_size=64)), draw(st.binary(max_size=64)))


bodies = st.builds(
    FrameDigestBody,
    meeting=st.binary(min_size=16, max_size=16),
    pid=st.integers(0, 2**32 - 1),
    kind=st.just(1),
    layer=st.integers(0, 3),
    epoch=st.integers(0, 2**32 - 1),
    first=st.integers(0, 2**32 - MAX_SIGNED_FRAMES),
    digests=st.lists(
        st.binary(min_size=FRAME_DIGEST_LEN, max_size=FRAME_DIGEST_LEN), min_size=1, max_size=8
    ).map(tuple),
)
messages = st.one_of(
    st.builds(MeetingEpoch, rosters(), st.none() | st.binary(min_size=32, max_size=32)),
    st.builds(
        MeetingEpochKey,
        st.binary(min_size=16, max_size=16),
        st.integers(0, 2**32 - 1),
        st.binary(min_size=48, max_size=48),
        st.none() | st.binary(min_size=32, max_size=32),
    ),
    st.builds(
        SealedRoster, st.binary(min_size=12, max_size=12), st.binary(min_size=1, max_size=64)
    ),
    st.builds(MeetingAck, st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1)),
    st.builds(MeetingSwitch, st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1)),
    st.builds(MeetingLeave, st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1)),
    rosters(),
    st.builds(FrameSignature, bodies, st.none() | st.binary(max_size=64), st.binary(max_size=64)),
)


@given(messages)
@settings(max_examples=200, deadline=None)
def test_any_message_round_trips(msg: MeetingMessage) -> None:
    assert decode_meeting(encode(msg)) == msg


def test_the_tags_are_meeting_tags() -> None:
    for cls in (*MESSAGE_TYPES, RosterBody, RosterEntry, FrameDigestBody):
        assert message_info(cls).tag.startswith("meeting.")


def test_a_roster_lists_participants_in_joining_order_each_once() -> None:
    roster(1, 2, 5)
    with pytest.raises(ValueError, match="joining order"):
        roster(2, 1)
    with pytest.raises(ValueError, match="joining order"):
        roster(1, 1)


def test_the_leader_is_a_participant() -> None:
    with pytest.raises(ValueError, match="leader is a participant"):
        roster(1, 2, leader=3)


def test_a_roster_is_bounded() -> None:
    roster(*range(MAX_PARTICIPANTS))
    with pytest.raises(WireError) as err:
        roster(*range(MAX_PARTICIPANTS + 1))
    assert err.value.code == TOO_LARGE
    with pytest.raises(WireError):
        RosterEntry(1, "a@b", 1, FP[:-1])


def test_frame_digests_are_bounded_and_typed() -> None:
    digest_body(digests=(b"\x01" * FRAME_DIGEST_LEN,) * MAX_SIGNED_FRAMES)
    bad: list[dict[str, Any]] = [
        {"digests": (b"\x01" * FRAME_DIGEST_LEN,) * (MAX_SIGNED_FRAMES + 1)},
        {"digests": ()},
        {"digests": (b"\x01" * (FRAME_DIGEST_LEN + 1),)},
        {"kind": 2},
        {"kind": 0, "layer": 1},
        {"layer": 4},
        {"first": 2**32 - 2},  # three frames from there pass the u32 range
    ]
    for changes in bad:
        with pytest.raises((WireError, ValueError)):
            digest_body(**changes)
    digest_body(kind=0, layer=0, first=2**32 - 3)


def test_a_rule_broken_on_the_wire_is_invalid_value() -> None:
    good = encode(roster(1, 2))
    assert decode_meeting(good) == roster(1, 2)
    raw = msgpack.unpackb(good, raw=False)
    raw[2]["body"][2]["leader"] = 9
    with pytest.raises(WireError) as err:
        decode_meeting(bytes(msgpack.packb(raw, use_bin_type=True)))
    assert err.value.code == INVALID_VALUE


def test_an_epoch_never_shows_its_secret() -> None:
    secret = bytes(range(100, 132))
    msg = MeetingEpoch(roster(1, 2), secret)
    for text in (repr(msg), str(msg), repr([msg])):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert MID.hex() in text


def test_an_epoch_key_never_shows_its_secret() -> None:
    secret = bytes(range(100, 132))
    msg = MeetingEpochKey(MID, 3, bytes(48), secret)
    for text in (repr(msg), str(msg), repr([msg])):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert MID.hex() in text


def _raw(tag: str, fields: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb([tag, 1, fields], use_bin_type=True))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_raw("meeting.ack", {"meeting": MID, "epoch": -1}), INVALID_VALUE),
        (_raw("meeting.switch", {"meeting": MID[:5], "epoch": 1}), INVALID_VALUE),
        (_raw("meeting.leave", {"meeting": MID, "pid": 1, "x": 1}), "wire.unknown_field"),
        (_raw("meeting.ack", {}), "wire.missing_field"),
        (_raw("meeting.epoch-key", {"meeting": MID, "epoch": 1, "roster": bytes(47),
                                    "secret": None}), INVALID_VALUE),
        (_raw("meeting.epoch-key", {"meeting": MID, "epoch": 1, "roster": bytes(48),
                                    "secret": bytes(31)}), INVALID_VALUE),
        (_raw("meeting.sealed-roster", {"nonce": bytes(11), "c": b"x"}), INVALID_VALUE),
        (_raw("meeting.sealed-roster", {"nonce": bytes(12), "c": b""}), INVALID_VALUE),
        (_raw("meeting.nope", {"meeting": MID}), "wire.unknown_type"),
        (_raw("meeting.participant", {"pid": 1, "address": "a@b", "device": 1, "fp": bytes(48)}),
         "wire.unexpected_type"),
    ],
)  # fmt: skip
def test_decoding_refuses_bad_messages_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(WireError) as err:
        decode_meeting(data)
    assert err.value.code == code


def _decode_or_code(data: bytes) -> None:
    try:
        msg = decode_meeting(data)
    except WireError as e:
        code = e.code
    else:
        assert isinstance(msg, MESSAGE_TYPES)
        assert encode(msg) == data
        return
    assert code in CODES


@given(st.binary(max_size=256))
@example(b"")
@example(b"\x93\xacmeeting.ack\x01\x80")
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    _decode_or_code(data)


@given(messages, st.data())
@settings(max_examples=200, deadline=None)
def test_mutated_messages_raise_only_wire_error(msg: MeetingMessage, data: st.DataObject) -> None:
    good = encode(msg)
    i = data.draw(st.integers(0, len(good) - 1))
    how = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    if how == "flip":
        bad = good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1 :]
    elif how == "truncate":
        bad = good[:i]
    elif how == "insert":
        bad = good[:i] + data.draw(st.binary(min_size=1, max_size=4)) + good[i:]
    else:
        bad = good[:i] + good[i + 1 :]
    _decode_or_code(bad)
