"""Sender authentication inside a meeting: a member forging frames under another's pid is
detected by every receiver; honest streams, and a lost signature, are not condemned."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from client.meetings import Failure, FrameSigner, FrameVerifier, MeetingCrypto, StreamReport
from client.meetings.frameauth import (
    KEY_EVERY,
    KEY_FIRST,
    MAX_PENDING,
    SIGN_EVERY_FRAMES,
    SIGN_INTERVAL_MS,
    VERIFY_BOUND_MS,
)
from suites import sframe
from tests.client.meetings.kit import MID, T0, Net, Person, verify
from wire.meeting import FrameSignature

AUDIO = (0, 0)


def setup(people: int = 4) -> tuple[Net, dict[int, MeetingCrypto], dict[int, FrameVerifier]]:
    net = Net(people)
    cryptos = {pid: MeetingCrypto(m) for pid, m in net.members.items()}
    fps = {p.pid: p.fp for p in net.leader.participants}
    verifiers = {pid: FrameVerifier(MID, verify, fps.get) for pid in net.members}
    return net, cryptos, verifiers


def frames(crypto: MeetingCrypto, n: int) -> list[bytes]:
    return [crypto.protect(b"meta", f"frame {i}".encode()) for i in range(n)]


def receive(v: FrameVerifier, c: MeetingCrypto, stream: tuple[int, int, int], cts: list[bytes],
            first: int = 0, now: int = T0) -> list[bool]:  # fmt: skip
    out = []
    for i, ct in enumerate(cts):
        pid, epoch, _ = c.unprotect(ct, b"meta")
        assert pid == stream[0]
        out.append(v.on_frame(stream, epoch, first + i, ct, now))
    return out


def test_the_signer_signs_every_fifty_frames_or_every_second() -> None:
    p = Person("s")
    signer = FrameSigner(MID, 1, p.key, p)
    sigs: list[FrameSignature] = []
    for i in range(SIGN_EVERY_FRAMES * 2 + 5):
        sigs += signer.add(*AUDIO, 0, i, b"ct%d" % i, T0)
    assert [len(s.body.digests) for s in sigs] == [SIGN_EVERY_FRAMES] * 2
    assert [s.body.first for s in sigs] == [0, SIGN_EVERY_FRAMES]
    assert signer.tick(T0 + SIGN_INTERVAL_MS - 1) == []
    late = signer.tick(T0 + SIGN_INTERVAL_MS)
    assert [len(s.body.digests) for s in late] == [5]
    more = [
        s for i in range(SIGN_EVERY_FRAMES * 8) for s in signer.add(*AUDIO, 0, 200 + i, b"", T0)
    ]
    keys = [s.key is not None for s in sigs + late + more]
    assert keys == [n < KEY_FIRST or n % KEY_EVERY == 0 for n in range(len(keys))]
    assert sigs[0].key == p.key


def test_a_new_epoch_or_a_gap_closes_the_window() -> None:
    p = Person("s")
    signer = FrameSigner(MID, 1, p.key, p)
    assert signer.add(1, 2, 0, 0, b"a", T0) == []
    gap = signer.add(1, 2, 0, 5, b"b", T0)
    assert [(s.body.first, len(s.body.digests)) for s in gap] == [(0, 1)]
    epoch = signer.add(1, 2, 1, 6, b"c", T0)
    assert [(s.body.epoch, s.body.first) for s in epoch] == [(0, 5)]
    assert all(s.key == p.key for s in gap + epoch)  # the first ones carry the key


def test_an_honest_stream_verifies_at_every_receiver() -> None:
    net, c, v = setup()
    sender = net.people[1]
    signer = FrameSigner(MID, 1, sender.key, sender)
    cts = frames(c[1], SIGN_EVERY_FRAMES)
    sigs = [s for i, ct in enumerate(cts) for s in signer.add(*AUDIO, 3, i, ct, T0)]
    for pid in (0, 2, 3):
        assert all(receive(v[pid], c[pid], (1, *AUDIO), cts))
        for sig in sigs:
            v[pid].on_signature(sig, T0 + 20)
        assert v[pid].tick(T0 + VERIFY_BOUND_MS * 2) == []
        assert v[pid].counts((1, *AUDIO)) == (SIGN_EVERY_FRAMES, 0)


def test_frames_forged_under_another_pid_are_caught_by_every_receiver() -> None:
    net, c, v = setup()
    victim, forger = net.people[1], net.people[2]
    # the forger holds the epoch secret, so it can make frames under the victim's KID ...
    forged_member = net.members[2]
    key_id = (3 << 32) | 1
    base = forged_member.recv_key(key_id)
    assert base is not None
    ctx = sframe.SFrameContext(sframe.AES_256_GCM_SHA512_128)
    ctx.add_send_key(key_id, base, next_ctr=20)
    forged = [ctx.protect(key_id, b"meta", b"evil %d" % i) for i in range(3)]
    honest = frames(c[1], 10)
    signer = FrameSigner(MID, 1, victim.key, victim)
    sigs = [s for i, ct in enumerate(honest) for s in signer.add(*AUDIO, 3, i, ct, T0)]
    sigs += signer.tick(T0 + SIGN_INTERVAL_MS)
    for pid in (0, 3):
        # ... and they decrypt: SFrame alone cannot tell them apart
        receive(v[pid], c[pid], (1, *AUDIO), forged, first=4)  # they win the race for 4..6
        receive(v[pid], c[pid], (1, *AUDIO), honest[:4])
        for sig in sigs:
            v[pid].on_signature(sig, T0 + 30)
        assert v[pid].tick(T0 + 40) == [StreamReport((1, *AUDIO), Failure.FORGED_FRAME)]
        assert v[pid].condemned((1, *AUDIO)) is Failure.FORGED_FRAME
        assert receive(v[pid], c[pid], (1, *AUDIO), honest[7:], first=7) == [False] * 3
    del forger


def test_a_forger_signing_with_its_own_key_is_caught() -> None:
    net, c, v = setup()
    victim, forger = net.people[1], net.people[2]
    honest = FrameSigner(MID, 1, victim.key, victim)
    first = honest.add(*AUDIO, 3, 0, c[1].protect(b"meta", b"x"), T0)
    first += honest.tick(T0 + SIGN_INTERVAL_MS)
    fake = FrameSigner(MID, 1, forger.key, forger)  # claims pid 1, signs as itself
    lie = fake.add(*AUDIO, 3, 1, b"whatever", T0) + fake.tick(T0 + SIGN_INTERVAL_MS)
    for pid in (0, 3):
        for sig in first:
            v[pid].on_signature(sig, T0)
        for sig in lie:
            v[pid].on_signature(sig, T0)
        assert v[pid].tick(T0) == [StreamReport((1, *AUDIO), Failure.BAD_SIGNATURE)]


def test_a_forger_offering_its_own_key_first_is_not_believed() -> None:
    net, c, _ = setup()
    forger = net.people[2]
    fake = FrameSigner(MID, 1, forger.key, forger)
    forged = frames(c[2], 1)  # any bytes: nobody signs them under pid 1's key
    lie = fake.add(*AUDIO, 3, 0, forged[0], T0) + fake.tick(T0 + SIGN_INTERVAL_MS)
    verifier = FrameVerifier(MID, verify, {1: net.people[1].fp}.get, max_unverified=0)
    verifier.on_frame((1, *AUDIO), 3, 0, forged[0], T0)
    for sig in lie:
        verifier.on_signature(sig, T0)  # its key's fingerprint is not pid 1's: ignored
    assert verifier.tick(T0 + VERIFY_BOUND_MS - 1) == []
    assert verifier.tick(T0 + VERIFY_BOUND_MS) == [StreamReport((1, *AUDIO), Failure.UNSIGNED)]


def test_withheld_signatures_condemn_the_stream_a_lost_one_does_not() -> None:
    net, c, v = setup()
    sender = net.people[1]
    signer = FrameSigner(MID, 1, sender.key, sender)
    cts = frames(c[1], SIGN_EVERY_FRAMES * 4)
    sigs = [s for i, ct in enumerate(cts) for s in signer.add(*AUDIO, 3, i, ct, T0)]
    receive(v[0], c[0], (1, *AUDIO), cts)
    receive(v[3], c[3], (1, *AUDIO), cts)
    for sig in sigs[:1] + sigs[2:]:  # one signature lost on the way
        v[0].on_signature(sig, T0)
    v[3].on_signature(sigs[0], T0)  # the rest withheld
    assert v[0].tick(T0 + VERIFY_BOUND_MS) == []
    assert v[0].counts((1, *AUDIO)) == (SIGN_EVERY_FRAMES * 3, SIGN_EVERY_FRAMES)
    assert v[3].tick(T0 + VERIFY_BOUND_MS) == [StreamReport((1, *AUDIO), Failure.UNSIGNED)]


def test_signatures_of_another_meeting_are_ignored() -> None:
    net, c, v = setup()
    sender = net.people[1]
    signer = FrameSigner(bytes(16), 1, sender.key, sender)
    ct = c[1].protect(b"meta", b"x")
    v[0].on_frame((1, *AUDIO), 3, 0, ct, T0)
    for sig in signer.add(*AUDIO, 3, 0, ct, T0) + signer.tick(T0 + SIGN_INTERVAL_MS):
        v[0].on_signature(sig, T0)
    assert v[0].counts((1, *AUDIO)) == (0, 0)


def test_pending_frames_are_bounded() -> None:
    verifier = FrameVerifier(MID, verify, {}.get, max_unverified=10**6)
    for i in range(MAX_PENDING + 5):
        verifier.on_frame((1, 0, 0), 0, i, b"x%d" % i, T0)
    assert verifier.counts((1, 0, 0)) == (0, 5)
    assert len(vars(verifier)["_streams"][(1, 0, 0)].pending) == MAX_PENDING


SIGNER = Person("prop")
HONEST = [b"honest frame %d" % i for i in range(120)]


def _signed_windows() -> list[FrameSignature]:
    signer = FrameSigner(MID, 1, SIGNER.key, SIGNER)
    out = [s for i, ct in enumerate(HONEST) for s in signer.add(*AUDIO, 0, i, ct, T0)]
    return out + signer.tick(T0 + SIGN_INTERVAL_MS)


WINDOWS = _signed_windows()


@settings(max_examples=40, deadline=None)
@given(
    st.permutations(range(len(HONEST))),
    st.sets(st.integers(0, len(HONEST) - 1), max_size=40),
    st.sets(st.integers(0, len(WINDOWS) - 1), max_size=1),
    st.sets(st.integers(0, len(HONEST) - 1), max_size=3),
)
def test_loss_and_reordering_never_condemn_an_honest_stream_and_a_forgery_always_is(
    order: list[int], lost: set[int], lost_sigs: set[int], forged: set[int]
) -> None:
    verifier = FrameVerifier(MID, verify, {1: SIGNER.fp}.get)
    for i in order:
        if i not in lost:
            verifier.on_frame((1, *AUDIO), 0, i, HONEST[i], T0)
        if i in forged:
            verifier.on_frame((1, *AUDIO), 0, i, b"forged %d" % i, T0)
    for n, sig in enumerate(WINDOWS):
        if n not in lost_sigs:
            verifier.on_signature(sig, T0 + 10)
    reports = verifier.tick(T0 + VERIFY_BOUND_MS)
    covered = {
        WINDOWS[n].body.first + k
        for n in range(len(WINDOWS))
        if n not in lost_sigs
        for k in range(len(WINDOWS[n].body.digests))
    }
    if forged & covered:
        assert reports == [StreamReport((1, *AUDIO), Failure.FORGED_FRAME)]
    else:
        assert reports == []


def test_signatures_before_the_key_are_checked_once_it_comes() -> None:
    verifier = FrameVerifier(MID, verify, {1: SIGNER.fp}.get, max_unverified=0)
    for i, ct in enumerate(HONEST):
        verifier.on_frame((1, *AUDIO), 0, i, ct, T0)
    for sig in WINDOWS:
        verifier.on_signature(FrameSignature(sig.body, None, sig.sig), T0)  # keys stripped
    assert verifier.counts((1, *AUDIO)) == (0, 0)
    assert not verifier.add_key(1, Person("other").key, T0)
    assert verifier.add_key(1, SIGNER.key, T0)
    assert verifier.counts((1, *AUDIO)) == (len(HONEST), 0)
    assert verifier.tick(T0 + VERIFY_BOUND_MS) == []
