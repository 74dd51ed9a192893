"""The packetizer: SFrame per frame, datagrams of at most 1,200 bytes, MoQ group/object ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.calls.errors import CallError
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import SEND_TIME, OutgoingFrame, Packetizer, split
from suites import sframe
from wire.media import MAX_DATAGRAM, MAX_PAYLOAD, MediaKind, decode_datagram, frame_metadata

SECRET = CallSecret(b"\x11" * 32)


def _sender(**kw: int) -> Packetizer:
    return Packetizer(MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0), 77, **kw)


def _video(size: int, keyframe: bool) -> OutgoingFrame:
    return OutgoingFrame(MediaKind.VIDEO, bytes(i % 251 for i in range(size)), keyframe, layer=1)


def test_large_frame_splits_evenly_and_reassembles_to_the_sframe_ciphertext() -> None:
    frame = _video(5000, True)
    datagrams = _sender().packetize(frame, now=1.5)
    decoded = [decode_datagram(d) for d in datagrams]
    assert len(datagrams) == 5
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    assert [h.packet for h, _ in decoded] == list(range(5))
    assert {(h.packets, h.frame, h.group, h.object, h.stream.sender) for h, _ in decoded} == {
        (5, 0, 0, 0, 77)
    }
    sizes = [len(p) for _, p in decoded]
    assert max(sizes) - min(sizes) <= 1 or sizes[-1] < sizes[0]
    ciphertext = b"".join(p for _, p in decoded)
    receiver = MediaCrypto(SECRET, Direction.CALLEE_TO_CALLER, now=0.0)
    plaintext = receiver.unprotect(ciphertext, frame_metadata(decoded[0][0]), now=1.5)
    assert plaintext == SEND_TIME.pack(1_500_000) + frame.data
    assert sframe.decode_header(ciphertext).kid == 0


def test_groups_and_objects_follow_keyframes() -> None:
    sender = _sender()
    pattern = [True, False, False, True, False]
    headers = [decode_datagram(sender.packetize(_video(100, k), now=0.0)[0])[0] for k in pattern]
    assert [(h.frame, h.group, h.object, h.keyframe) for h in headers] == [
        (0, 0, 0, True),
        (1, 0, 1, False),
        (2, 0, 2, False),
        (3, 1, 0, True),
        (4, 1, 1, False),
    ]
    audio = OutgoingFrame(MediaKind.AUDIO, b"opus", True, audio_level=30, voice=True)
    first, second = (decode_datagram(sender.packetize(audio, now=0.0)[0])[0] for _ in "ab")
    assert (first.frame, first.group, second.frame, second.group) == (0, 0, 1, 1)
    assert (first.audio_level, first.voice, first.stream.layer) == (30, True, 0)
    assert sender.frames_sent == 7


def test_stream_must_start_with_a_keyframe() -> None:
    with pytest.raises(CallError):
        _sender().packetize(_video(10, False), now=0.0)


def test_smaller_payload_bound() -> None:
    datagrams = _sender(max_payload=100).packetize(_video(1000, True), now=0.0)
    assert all(len(d) <= 100 + MAX_DATAGRAM - MAX_PAYLOAD for d in datagrams)
    with pytest.raises(CallError):
        _sender(max_payload=MAX_PAYLOAD + 1)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=20_000), st.integers(1, MAX_PAYLOAD))
def test_split(data: bytes, bound: int) -> None:
    parts = split(data, bound)
    assert b"".join(parts) == data
    assert all(0 < len(p) <= bound for p in parts)
    assert len(parts) == -(-len(data) // bound)


def test_split_refuses_empty() -> None:
    with pytest.raises(CallError):
        split(b"")
