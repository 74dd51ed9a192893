"""SFrame with meeting keys: every participant opens every other's frames, a leaver opens
nothing sent after the switch, replays and unknown senders are refused."""

from __future__ import annotations

import pytest

from client.meetings import (
    EPOCH_GRACE_MS,
    LEAVE_BATCH_MS,
    MeetingCrypto,
    MeetingKeyError,
    MeetingMember,
    kid,
    kid_parts,
)
from suites import sframe
from suites.errors import DecryptionFailed
from tests.client.meetings.kit import MID, T0, Net, verify

META = b"frame metadata"


def cryptos(net: Net) -> dict[int, MeetingCrypto]:
    return {pid: MeetingCrypto(member) for pid, member in net.members.items()}


def test_everyone_opens_everyone_elses_frames() -> None:
    net = Net(4)
    c = cryptos(net)
    for sender, crypto in c.items():
        frame = crypto.protect(META, f"hello from {sender}".encode())
        assert kid_parts(sframe.decode_header(frame).kid) == (3, sender)
        for receiver, other in c.items():
            if receiver != sender:
                assert other.unprotect(frame, META) == (sender, 3, f"hello from {sender}".encode())


def test_a_leaver_opens_nothing_after_the_switch() -> None:
    net = Net(4)
    c = cryptos(net)
    net.deaf.add(3)
    net.leader.leave(3, T0 + 10)
    net.tick(T0 + 10 + LEAVE_BATCH_MS)
    assert net.members[1].send_epoch == 4
    frame = c[1].protect(META, b"after the switch")
    assert c[2].unprotect(frame, META)[2] == b"after the switch"
    with pytest.raises(sframe.UnknownKidError):
        c[3].unprotect(frame, META)  # still connected, still in epoch 3: nothing opens
    forced = MeetingCrypto(net.members[3])  # nor by trying the old epoch's key on it
    with pytest.raises(sframe.UnknownKidError):
        forced.unprotect(frame, META)


def test_frames_of_the_old_epoch_open_during_the_grace_only() -> None:
    net = Net(3)
    c = cryptos(net)
    old = c[1].protect(META, b"in flight")
    net.leader.leave(2, T0)
    net.deaf.add(2)
    net.tick(T0 + LEAVE_BATCH_MS)
    assert c[0].unprotect(old, META)[2] == b"in flight"
    later = c[1].protect(META, b"x")
    net.tick(T0 + LEAVE_BATCH_MS + EPOCH_GRACE_MS)
    assert c[0].unprotect(later, META)[2] == b"x"
    again = MeetingCrypto(net.members[0])
    with pytest.raises(sframe.UnknownKidError):
        again.unprotect(old, META)


def test_replays_tampering_and_unknown_senders_are_refused() -> None:
    net = Net(3)
    c = cryptos(net)
    frame = c[1].protect(META, b"once")
    c[2].unprotect(frame, META)
    with pytest.raises(sframe.ReplayError):
        c[2].unprotect(frame, META)
    second = c[1].protect(META, b"twice")
    with pytest.raises(DecryptionFailed):
        c[2].unprotect(second[:-1] + bytes([second[-1] ^ 1]), META)
    assert c[2].unprotect(second, META)[2] == b"twice"
    stranger = sframe.SFrameContext(sframe.AES_256_GCM_SHA512_128)
    stranger.add_send_key(kid(2, 99), bytes(64))
    with pytest.raises(sframe.UnknownKidError):
        c[2].unprotect(stranger.protect(kid(2, 99), META, b"x"), META)


def test_nothing_to_send_before_an_epoch() -> None:
    with pytest.raises(MeetingKeyError):
        MeetingCrypto(MeetingMember(MID, 5, verify)).protect(META, b"x")
