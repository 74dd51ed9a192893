"""A meeting's frames through the calls' packetizer and receiver (``client.meetings.framing``):
pid KIDs, whose frame it was, frames under an epoch not held counted apart from
authentication failures; the speaking pattern; the fixture check of a skipping layer."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from client.calls.fixture import load_fixture
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import Receiver
from client.meetings import LEAVE_BATCH_MS, MeetingCrypto
from client.meetings.framing import FixtureFrames, PidCrypto, audio_level
from tests.client.meetings.kit import T0, Net
from wire.media import SILENCE, MediaKind, StreamId

FIXTURE = load_fixture()


def _frames(crypto: PidCrypto, sender: int, count: int, now: float) -> list[bytes]:
    packetizer = Packetizer(crypto, sender)
    out: list[bytes] = []
    for i in range(count):
        frame = FIXTURE.frame_at(MediaKind.AUDIO, i)
        level, voice = audio_level(0, i)
        out += packetizer.packetize(
            OutgoingFrame(MediaKind.AUDIO, frame.data, True, level, voice), now=now
        )
    return out


def test_receivers_learn_the_pid_of_each_frame_and_open_all() -> None:
    net = Net(3)
    c = {pid: PidCrypto(MeetingCrypto(m)) for pid, m in net.members.items()}
    receiver = Receiver(c[0], check=FixtureFrames(FIXTURE))
    for sender in (1, 2):
        for datagram in _frames(c[sender], 1000 + sender, 5, 1.0):
            receiver.receive(datagram, now=1.01)
            if c[0].opened:
                assert c[0].last_pid in (1, 2)
    stats = receiver.stats()
    assert c[0].opened == 10
    assert stats.decrypt_failures == 0
    assert stats.digest_mismatches == 0
    assert c[0].last_pid == 2


def test_a_frame_under_an_epoch_not_held_is_no_key_not_a_failure() -> None:
    net = Net(3)
    c = {pid: PidCrypto(MeetingCrypto(m)) for pid, m in net.members.items()}
    net.deaf.add(2)
    net.leader.leave(2, T0)
    net.tick(T0 + LEAVE_BATCH_MS)  # 0 and 1 move to a fresh epoch; 2 does not have it
    leaver = Receiver(c[2])
    for datagram in _frames(c[1], 7, 3, 1.0):
        leaver.receive(datagram, now=1.01)
    assert c[2].no_key == 3
    assert c[2].opened == 0
    assert leaver.stats().decrypt_failures == 3  # the receiver's count; the summary subtracts


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 255), st.integers(0, 100_000))
def test_the_speaking_pattern_always_speaks_within_range(pid: int, index: int) -> None:
    level, voice = audio_level(pid, index)
    assert voice
    assert 0 <= level < SILENCE


def test_phrases_trail_off_and_start_loud_again() -> None:
    levels = [audio_level(1, i)[0] for i in range(200)]
    assert levels[0] < levels[99]  # louder (smaller -dBov) at the start of a phrase
    assert levels[100] == levels[0]


def test_any_frame_of_the_clip_matches_but_nothing_else() -> None:
    check = FixtureFrames(FIXTURE)
    video = StreamId(5, MediaKind.VIDEO, 1)
    frame = FIXTURE.frame_at(MediaKind.VIDEO, 17)
    assert check.matches(video, 3, frame.data)  # a skipping layer: not the clip's 3rd
    assert not check.matches(video, 17, frame.data + b"x")
    audio = FIXTURE.frame_at(MediaKind.AUDIO, 0)
    assert not check.matches(video, 0, audio.data)
    assert hashlib.sha256(audio.data).digest() == audio.sha256
