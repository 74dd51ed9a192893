"""Frames told apart by node sender id (``client.meetings.attribution``): a member that
sends frames under another pid on its own sender id is reported, its frames are dropped,
and the pid it claims keeps its stream, whose own frames keep playing, whether or not that
pid was tied to a sender id yet (a forger cannot win the tie); a frame on the pid's own
sender id that its verified signature contradicts still condemns the stream; a participant
that comes back on a new connection is tied to its new sender id and not reported; a frame
refused as a forgery moves no anti-replay window."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from client.meetings import Failure, FrameSigner, FrameVerifier, MeetingCrypto, StreamReport
from client.meetings.attribution import CLAIM_BOUND_MS, RETIE_QUIET_MS, Forgery
from client.meetings.frameauth import SIGN_EVERY_FRAMES, VERIFY_BOUND_MS
from client.meetings.keys import SUITE, kid
from suites import sframe
from tests.client.meetings.kit import MID, T0, Net, Person, verify

AUDIO = (1, 0, 0)  # the victim's (pid 1) audio
MINE = (2, 0, 0)  # the forger's (pid 2) own audio
FRAME_MS = 20
VICTIM, FORGER = Person("victim"), Person("forger")
FPS = {1: VICTIM.fp, 2: FORGER.fp}
ON_VICTIM, ON_FORGER, ON_VICTIM_AGAIN = 501, 502, 601  # node sender ids


def frame(pid: int, i: int) -> bytes:
    return b"opus frame %d of %d" % (i, pid)


def forged(i: int) -> bytes:
    return b"a forged frame %d" % i


class Speaker:
    """One participant's audio into one receiver's verifier, a frame every call, with its
    signatures (every 50 frames) on its sender id."""

    def __init__(self, v: FrameVerifier, pid: int, person: Person, sender: int) -> None:
        self.v, self.pid, self.sender = v, pid, sender
        self.signer = FrameSigner(MID, pid, person.key, person)
        self.sent = 0
        self.played = 0

    def speak(self, now: int) -> None:
        index = self.sent
        self.sent += 1
        stream = (self.pid, 0, 0)
        self.played += self.v.on_frame(stream, 0, index, frame(self.pid, index), now, self.sender)
        for sig in self.signer.add(0, 0, 0, index, frame(self.pid, index), now):
            self.v.on_signature(sig, now + 5, self.sender)

    def finish(self, now: int) -> None:
        """The signature of its last frames."""
        for sig in self.signer.flush():
            self.v.on_signature(sig, now, self.sender)


def verifier() -> FrameVerifier:
    return FrameVerifier(MID, verify, FPS.get)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(0, 3 * SIGN_EVERY_FRAMES),  # when the forger starts (frames of the victim)
    st.integers(1, 2 * SIGN_EVERY_FRAMES),  # forged frames
    st.booleans(),  # the forger signs its own audio (its pid tied to its sender id)
    st.booleans(),  # forged at the victim's frame indices, or far beyond them
)
def test_frames_forged_under_another_pid_condemn_no_one(
    start: int, count: int, honest_too: bool, same_indices: bool
) -> None:
    v = verifier()
    victim = Speaker(v, 1, VICTIM, ON_VICTIM)
    forger = Speaker(v, 2, FORGER, ON_FORGER)
    reports: list[StreamReport] = []
    now, refused = T0, 0
    total = start + count + 3 * SIGN_EVERY_FRAMES
    for tick in range(total):
        victim.speak(now)
        if honest_too:
            forger.speak(now)
        if start <= tick < start + count:
            index = tick if same_indices else 10_000 + tick
            refused += not v.on_frame(AUDIO, 0, index, forged(index), now + 1, ON_FORGER)
        now += FRAME_MS
        reports += v.tick(now)
    victim.finish(now)
    reports += v.tick(now + VERIFY_BOUND_MS + CLAIM_BOUND_MS)
    assert reports == []  # neither the victim's stream nor any other condemned
    assert v.condemned(AUDIO) is None
    assert victim.played == total  # the victim's own frames all played
    assert v.counts(AUDIO)[0] == total  # and verified: no forged frame counted against it
    own = 2 if honest_too else None  # the forger's pid, known if it signs its own
    assert v.forgeries == [Forgery(ON_FORGER, AUDIO, own, Failure.FORGED_FRAME)]
    if start >= SIGN_EVERY_FRAMES + 1:  # the victim's first signature tied it: none played
        assert refused == count


def test_a_forger_tied_to_its_own_pid_is_reported_at_its_first_forged_frame() -> None:
    v = verifier()
    forger = Speaker(v, 2, FORGER, ON_FORGER)
    for tick in range(SIGN_EVERY_FRAMES + 1):
        forger.speak(T0 + tick * FRAME_MS)
    assert not v.on_frame(AUDIO, 0, 0, forged(0), T0 + 2000, ON_FORGER)  # the victim untied
    assert v.forgeries == [Forgery(ON_FORGER, AUDIO, 2, Failure.FORGED_FRAME)]
    assert v.condemned(AUDIO) is None
    assert v.counts(AUDIO) == (0, 0)  # nothing held against the victim's stream


def test_frames_forged_before_the_forger_is_tied_are_sorted_out_when_it_is() -> None:
    """More forged frames than a stream may leave unsigned, under a pid this receiver never
    hears from, come on a sender id tied to nothing; then that sender id's own verified
    signatures tie it to the forger's pid: the frames are the forger's, not the stream's."""
    v = verifier()
    count = 3 * SIGN_EVERY_FRAMES
    for i in range(count):
        assert v.on_frame(AUDIO, 0, i, forged(i), T0 + i * FRAME_MS, ON_FORGER)
    forger = Speaker(v, 2, FORGER, ON_FORGER)
    for tick in range(SIGN_EVERY_FRAMES):
        forger.speak(T0 + tick * FRAME_MS)
    assert v.forgeries == [Forgery(ON_FORGER, AUDIO, 2, Failure.FORGED_FRAME)]
    assert v.tick(T0 + count * FRAME_MS + VERIFY_BOUND_MS) == []  # not condemned unsigned
    assert v.condemned(AUDIO) is None


def test_a_forger_cannot_win_the_tie_before_the_victims_first_signature() -> None:
    """Forged frames come first, on the forger's sender id, at the very indices the victim
    then sends and signs: they play (nobody is tied yet), but the victim's first verified
    signature ties it to its own sender id, the forger's frames are sorted out as the
    forger's, and no digest of theirs is held against the victim."""
    v = verifier()
    for i in range(SIGN_EVERY_FRAMES):
        assert v.on_frame(AUDIO, 0, i, forged(i), T0 + i, ON_FORGER)
    victim = Speaker(v, 1, VICTIM, ON_VICTIM)
    for tick in range(2 * SIGN_EVERY_FRAMES):
        victim.speak(T0 + 100 + tick * FRAME_MS)
    assert v.ties.speaks_for(1, ON_VICTIM)
    assert not v.ties.speaks_for(1, ON_FORGER)
    assert not v.on_frame(AUDIO, 0, 500, forged(500), T0 + 3000, ON_FORGER)  # now refused
    assert v.tick(T0 + 100 + VERIFY_BOUND_MS + CLAIM_BOUND_MS) == []
    assert v.condemned(AUDIO) is None
    assert v.forgeries == [Forgery(ON_FORGER, AUDIO, None, Failure.FORGED_FRAME)]
    assert victim.played == 2 * SIGN_EVERY_FRAMES


def test_a_frame_its_own_verified_signature_contradicts_still_condemns_the_stream() -> None:
    v = verifier()
    victim = Speaker(v, 1, VICTIM, ON_VICTIM)
    victim.speak(T0)  # index 0
    assert v.on_frame(AUDIO, 0, 1, forged(1), T0 + 10, ON_VICTIM)  # on its own sender id
    victim.sent = 1
    for tick in range(1, SIGN_EVERY_FRAMES):
        victim.speak(T0 + tick * FRAME_MS)
    assert v.tick(T0 + SIGN_EVERY_FRAMES * FRAME_MS) == [StreamReport(AUDIO, Failure.FORGED_FRAME)]
    assert v.forgeries == []


def test_a_participant_back_on_a_new_connection_is_retied_and_not_reported() -> None:
    v = verifier()
    victim = Speaker(v, 1, VICTIM, ON_VICTIM)
    now = T0
    for _ in range(2 * SIGN_EVERY_FRAMES):
        victim.speak(now)
        now += FRAME_MS
    back = Speaker(v, 1, VICTIM, ON_VICTIM_AGAIN)  # a new connection: a new sender id
    back.signer = victim.signer
    back.sent = victim.sent
    reports = []
    for _ in range(RETIE_QUIET_MS // FRAME_MS + 3 * SIGN_EVERY_FRAMES):
        back.speak(now)
        now += FRAME_MS
        reports += v.tick(now)
    reports += v.tick(now + VERIFY_BOUND_MS + CLAIM_BOUND_MS)
    assert v.ties.speaks_for(1, ON_VICTIM_AGAIN)
    assert reports == []
    assert v.forgeries == []  # it carried the pid's verified signatures: no forger
    assert back.played >= 2 * SIGN_EVERY_FRAMES  # played again once retied


def test_a_frame_refused_as_a_forgery_moves_no_anti_replay_window() -> None:
    """A forger's frame under its victim's KID with a counter far ahead authenticates, but
    is refused: the victim's next frames (lower counters) still open."""
    net = Net(3)
    victim, forger, receiver = net.members[1], net.members[2], MeetingCrypto(net.members[0])
    epoch = victim.send_epoch
    assert epoch is not None
    base_key = forger.recv_key(kid(epoch, 1))
    assert base_key is not None
    forged_ctx = sframe.SFrameContext(SUITE)
    forged_ctx.add_send_key(kid(epoch, 1), base_key, next_ctr=1 << 20)
    sending = MeetingCrypto(victim)
    metadata = b"frame metadata"
    first = sending.protect(metadata, b"one")
    fake = forged_ctx.protect(kid(epoch, 1), metadata, b"forged")
    assert receiver.open(first, metadata, lambda pid, e: True) is not None
    assert receiver.open(fake, metadata, lambda pid, e: False) is None
    later = sending.protect(metadata, b"two")
    assert receiver.unprotect(later, metadata)[2] == b"two"  # not refused as too old
    assert receiver.unprotect(fake, metadata)[2] == b"forged"  # (a fake admitted: counts)
    try:
        receiver.unprotect(sending.protect(metadata, b"three"), metadata)
    except sframe.ReplayError:
        pass
    else:
        raise AssertionError("a counter far behind an admitted one is refused")
