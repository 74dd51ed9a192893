"""The receiver: reassembly, jitter buffer, and each reason a frame is dropped and counted."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.reassembly import FrameWindow, Outcome, Reassembler, Seen
from client.calls.receiver import Receiver
from wire.media import (
    MediaHeader,
    MediaKind,
    StreamId,
    decode_datagram,
    encode_datagram,
    frame_metadata,
)

SECRET = CallSecret(b"\x42" * 32)
DELAY = 0.1


class _Digest:
    """A FrameCheck that refuses the frame indices in ``bad``."""

    def __init__(self, *bad: int) -> None:
        self.bad = set(bad)

    def matches(self, stream: StreamId, frame: int, data: bytes) -> bool:
        return frame not in self.bad


def _pair(**kw: object) -> tuple[Packetizer, Receiver]:
    sender = Packetizer(MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0), 5)
    crypto = MediaCrypto(SECRET, Direction.CALLEE_TO_CALLER, now=0.0)
    return sender, Receiver(crypto, delay=DELAY, **kw)  # type: ignore[arg-type]


def _audio(i: int) -> OutgoingFrame:
    return OutgoingFrame(MediaKind.AUDIO, f"opus frame {i}".encode(), True)


def _video(i: int, size: int = 3000) -> OutgoingFrame:
    return OutgoingFrame(MediaKind.VIDEO, bytes([i]) * size, i == 0)


def _audio_call(n: int) -> tuple[Packetizer, Receiver, list[bytes]]:
    sender, receiver = _pair()
    datagrams = [sender.packetize(_audio(i), now=i * 0.02)[0] for i in range(n)]
    return sender, receiver, datagrams


def test_frames_play_in_order_at_their_playout_time() -> None:
    _, receiver, datagrams = _audio_call(3)
    for i, d in reversed(list(enumerate(datagrams))):  # all arrive at once, reversed
        receiver.receive(d, now=0.05 + i * 1e-6)
    assert receiver.due(now=0.05) == []
    played = receiver.due(now=0.2)
    assert [f.data for f in played] == [b"opus frame 0", b"opus frame 1", b"opus frame 2"]
    assert [f.header.frame for f in played] == [0, 1, 2]
    min_transit = 0.05 + 2e-6 - 0.04  # frame 2 came first, with the shortest transit
    assert [f.playout for f in played] == pytest.approx(
        [i * 0.02 + min_transit + DELAY for i in range(3)]
    )
    stats = receiver.stats(frames_sent=3)
    assert (stats.frames_received, stats.frames_lost, stats.frames_late) == (3, 0, 0)
    assert stats.frames_sent == 3


def test_packets_of_a_frame_in_any_order() -> None:
    sender, receiver = _pair()
    datagrams = sender.packetize(_video(0, 4000), now=0.0)
    assert len(datagrams) == 4
    for d in (datagrams[2], datagrams[0], datagrams[3], datagrams[1]):
        receiver.receive(d, now=0.01)
    (frame,) = receiver.finish()
    assert frame.data == bytes([0]) * 4000
    assert frame.sent == 0.0
    assert frame.arrival == 0.01


def test_loss_counted_from_frame_index_gaps() -> None:
    _, receiver, datagrams = _audio_call(10)
    for i, d in enumerate(datagrams):
        if i not in (3, 4, 9):
            receiver.receive(d, now=i * 0.02 + 0.01)
    stats = receiver.stats()
    assert (stats.frames_received, stats.frames_lost) == (7, 2)  # 9 is past the last seen


def test_late_frame_dropped_and_counted() -> None:
    _, receiver, datagrams = _audio_call(3)
    receiver.receive(datagrams[0], now=0.01)
    receiver.receive(datagrams[2], now=0.05)
    receiver.receive(datagrams[1], now=0.02 + 0.01 + DELAY + 0.001)
    stats = receiver.stats()
    assert (stats.frames_received, stats.frames_late, stats.frames_lost) == (2, 1, 0)
    assert stats.latency_ms_p99 == pytest.approx(111.0)
    assert [f.header.frame for f in receiver.finish()] == [0, 2]


def test_tampered_frame_dropped_and_counted() -> None:
    _, receiver, datagrams = _audio_call(3)
    bad = bytearray(datagrams[1])
    bad[-1] ^= 1
    for i, d in enumerate((datagrams[0], bytes(bad), datagrams[2])):
        receiver.receive(d, now=i * 0.02 + 0.01)
    receiver.receive(datagrams[1], now=0.05)  # the genuine frame still gets through
    stats = receiver.stats()
    assert (stats.decrypt_failures, stats.frames_received, stats.frames_lost) == (1, 3, 0)


def test_tampered_clear_header_fails_authentication() -> None:
    _, receiver, datagrams = _audio_call(2)
    header, payload = decode_datagram(datagrams[1])
    moved = encode_datagram(dataclasses.replace(header, frame=7, group=7), payload)
    receiver.receive(moved, now=0.03)
    assert receiver.stats().decrypt_failures == 1


def test_replays_dropped_and_counted() -> None:
    sender, receiver, datagrams = _audio_call(2)
    video = sender.packetize(_video(0), now=0.04)
    receiver.receive(datagrams[0], now=0.01)
    receiver.receive(datagrams[0], now=0.02)  # a delivered frame's packet again
    receiver.receive(video[0], now=0.05)
    receiver.receive(video[0], now=0.05)  # a packet twice while its frame is pending
    header, payload = decode_datagram(datagrams[1])
    other = dataclasses.replace(header, stream=dataclasses.replace(header.stream, sender=9))
    receiver.receive(datagrams[1], now=0.03)
    receiver.receive(encode_datagram(other, payload), now=0.03)  # same counter, new stream
    stats = receiver.stats()
    assert stats.replays == 3
    assert (stats.frames_received, stats.decrypt_failures) == (2, 0)


def test_digest_mismatch_dropped_and_counted() -> None:
    _, receiver, datagrams = _audio_call(3)
    receiver = Receiver(
        MediaCrypto(SECRET, Direction.CALLEE_TO_CALLER, now=0.0), delay=DELAY, check=_Digest(1)
    )
    for i, d in enumerate(datagrams):
        receiver.receive(d, now=i * 0.02 + 0.01)
    stats = receiver.stats()
    assert (stats.digest_mismatches, stats.frames_received, stats.frames_lost) == (1, 2, 0)


def test_malformed_and_inconsistent_packets() -> None:
    sender, receiver = _pair()
    datagrams = sender.packetize(_video(0), now=0.0)
    receiver.receive(b"\x00" * 30, now=0.0)
    receiver.receive(datagrams[0], now=0.0)
    header, payload = decode_datagram(datagrams[1])
    receiver.receive(encode_datagram(dataclasses.replace(header, packets=5), payload), now=0.0)
    assert receiver.stats().malformed == 2


def test_incomplete_frame_expires_and_is_lost() -> None:
    sender, receiver = _pair()
    first = sender.packetize(_video(0), now=0.0)
    second = sender.packetize(_video(1), now=0.033)
    receiver.receive(first[0], now=0.01)  # the rest of frame 0 never comes
    for d in second:
        receiver.receive(d, now=0.2)
    stats = receiver.stats()
    assert (stats.incomplete, stats.frames_lost, stats.frames_received) == (1, 1, 1)


def test_authenticated_but_too_short_plaintext_is_malformed() -> None:
    crypto = MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0)
    _, receiver = _pair()
    header = MediaHeader(StreamId(5, MediaKind.AUDIO), 0, 0, 0, 0, 1, keyframe=True)
    ciphertext = crypto.protect(frame_metadata(header), b"short", now=0.0)  # no send time
    receiver.receive(encode_datagram(header, ciphertext), now=0.01)
    assert receiver.stats().malformed == 1


def test_no_frames_no_latency() -> None:
    _, receiver = _pair()
    stats = receiver.stats()
    assert (stats.latency_ms_p50, stats.latency_ms_p99, stats.jitter_ms) == (None, None, 0.0)
    assert set(stats.as_dict()) >= {
        "frames_sent",
        "frames_received",
        "frames_lost",
        "frames_late",
        "decrypt_failures",
        "latency_ms_p50",
        "latency_ms_p99",
        "jitter_ms",
    }


def test_bad_delay() -> None:
    with pytest.raises(ValueError, match="delay"):
        Receiver(MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0), delay=-1)


def test_frame_window() -> None:
    window = FrameWindow(size=4)
    assert window.check(0) is Seen.NEW
    window.mark(0)
    window.mark(2)
    assert [window.check(i) for i in range(4)] == [Seen.DONE, Seen.NEW, Seen.DONE, Seen.NEW]
    window.mark(9)
    assert window.check(5) is Seen.TOO_OLD
    assert window.check(6) is Seen.NEW
    assert window.check(9) is Seen.DONE


def test_pending_frames_are_bounded() -> None:
    reassembler = Reassembler(timeout=10.0, max_packets=4, max_pending=2)
    stream = StreamId(1, MediaKind.VIDEO)
    for frame in range(3):
        header = MediaHeader(stream, 0, frame + 1, frame, 0, 2)
        assert reassembler.add(header, b"x", 0.0)[0] is Outcome.PENDING
    assert reassembler.incomplete == 1  # frame 0 made way for frame 2
    too_many = MediaHeader(stream, 0, 9, 9, 0, 5)
    assert reassembler.add(too_many, b"x", 0.0)[0] is Outcome.MALFORMED


def _mutations(datagrams: list[bytes]) -> st.SearchStrategy[bytes]:
    def flip(d: bytes, pos: int, bit: int) -> bytes:
        pos %= len(d)
        return d[:pos] + bytes([d[pos] ^ (1 << bit)]) + d[pos + 1 :]

    original = st.sampled_from(datagrams)
    return (
        original
        | st.builds(flip, original, st.integers(0, 2000), st.integers(0, 7))
        | st.builds(lambda d, n: d[:n], original, st.integers(0, 40))
        | st.binary(max_size=64)
    )


def _sample_datagrams() -> list[bytes]:
    """Six video frames of three packets and six audio frames: 12 frames in all."""
    sender, _ = _pair()
    out = []
    for i in range(6):
        out += sender.packetize(_video(i, 2500), now=i * 0.033)
        out += sender.packetize(_audio(i), now=i * 0.02)
    return out


SAMPLE_DATAGRAMS = _sample_datagrams()


@settings(max_examples=150, deadline=None)
@given(st.lists(_mutations(SAMPLE_DATAGRAMS), max_size=40))
def test_receiver_never_raises_and_counts_add_up(datagrams: list[bytes]) -> None:
    _, receiver = _pair()
    for n, d in enumerate(datagrams):
        receiver.receive(d, now=0.01 * n)
        receiver.due(now=0.01 * n)
    receiver.finish()
    stats = receiver.stats()
    assert stats.frames_lost >= 0
    assert stats.frames_received + stats.frames_late + stats.digest_mismatches <= 12
