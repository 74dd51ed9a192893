"""Whose fault a failing frame signature is (``client.meetings.attribution``): a member that
sends a bad signature naming another pid, on its own node sender id, gets itself reported
and never its victim's stream condemned; the pid's own bad signature (on the sender id its
verified signatures arrive on) still condemns its stream; a replay ties nothing, and a
participant that comes back on a new connection is tied to its new sender id."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from client.meetings import Failure, FrameSigner, FrameVerifier, StreamReport
from client.meetings.attribution import RETIE_QUIET_MS, Forgery
from client.meetings.frameauth import VERIFY_BOUND_MS
from tests.client.meetings.kit import MID, T0, Person, verify
from wire.meeting import FrameSignature

AUDIO = (1, 0, 0)  # the victim's (pid 1) audio
FRAME_MS = 20
VICTIM, MEMBER = Person("victim"), Person("member")
FPS = {1: VICTIM.fp, 2: MEMBER.fp}
ON_VICTIM, ON_MEMBER, ON_VICTIM_AGAIN = 501, 502, 601  # node sender ids


def frame(i: int) -> bytes:
    return b"opus frame %d" % i


class Talk:
    """The victim's audio, a frame every 20 ms, into one receiver's verifier with its
    signatures (every 50 frames) on the victim's sender id."""

    def __init__(self, verifier: FrameVerifier, sender: int = ON_VICTIM) -> None:
        self.v, self.sender = verifier, sender
        self.signer = FrameSigner(MID, 1, VICTIM.key, VICTIM)
        self.sent, self.now = 0, T0
        self.signatures: list[FrameSignature] = []

    def run(self, frames: int) -> list[StreamReport]:
        reports = []
        for _ in range(frames):
            index = self.sent
            self.sent += 1
            self.v.on_frame(AUDIO, 0, index, frame(index), self.now)
            for sig in self.signer.add(0, 0, 0, index, frame(index), self.now):
                self.signatures.append(sig)
                self.v.on_signature(sig, self.now + 5, self.sender)
            self.now += FRAME_MS
            reports += self.v.tick(self.now)
        return reports


def lie(stream: tuple[int, int, int] = AUDIO, keyed: bool = True) -> FrameSignature:
    """A signature naming ``stream``'s pid, with the victim's key, signed by the member."""
    pid, kind, layer = stream
    fake = FrameSigner(MID, pid, VICTIM.key, MEMBER)
    (sig,) = fake.add(kind, layer, 0, 7, b"whatever", T0) + fake.flush()
    return sig if keyed else FrameSignature(sig.body, None, sig.sig)


def verifier() -> FrameVerifier:
    return FrameVerifier(MID, verify, FPS.get)


@settings(max_examples=12, deadline=None)
@given(
    st.integers(0, 4),  # after how many of the victim's signatures the lie comes
    st.sampled_from([AUDIO, (1, 1, 0), (1, 1, 2)]),  # the stream it claims
    st.booleans(),  # with the victim's key, or none
    st.booleans(),  # the member replays a verified signature of the victim first
)
def test_one_bad_signature_naming_another_pid_condemns_no_one(
    after: int, claimed: tuple[int, int, int], keyed: bool, replay: bool
) -> None:
    v = verifier()
    talk = Talk(v)
    assert talk.run(after * 50) == []
    if replay and talk.signatures:
        v.on_signature(talk.signatures[-1], talk.now, ON_MEMBER)  # ties nothing
    v.on_signature(lie(claimed, keyed), talk.now, ON_MEMBER)
    assert talk.run(5 * 50) == []
    assert talk.v.tick(talk.now + VERIFY_BOUND_MS) == []
    for stream in (AUDIO, claimed):
        assert v.condemned(stream) is None
    assert v.counts(AUDIO) == ((after + 5) * 50, 0)  # every frame checked, none unsigned
    assert v.forgeries == [Forgery(ON_MEMBER, claimed, None)]


def test_the_pids_own_bad_signature_still_condemns_its_stream() -> None:
    v = verifier()
    talk = Talk(v)
    assert talk.run(100) == []
    v.on_signature(lie(), talk.now, ON_VICTIM)  # on the victim's own sender id
    assert v.tick(talk.now) == [StreamReport(AUDIO, Failure.BAD_SIGNATURE)]
    assert v.forgeries == []


def test_a_forger_is_reported_once_and_its_later_lies_go_unchecked() -> None:
    checked: list[bytes] = []

    def counting(key: bytes, message: bytes, sig: bytes, context: bytes) -> None:
        checked.append(sig)
        verify(key, message, sig, context)

    v = FrameVerifier(MID, counting, FPS.get)
    talk = Talk(v)
    assert talk.run(100) == []
    for _ in range(5):
        v.on_signature(lie(), talk.now, ON_MEMBER)
    assert len(checked) == 2 + 1  # the victim's two, the first lie
    assert v.forgeries == [Forgery(ON_MEMBER, AUDIO, None)]
    assert v.ties.refused == 4
    assert v.tick(talk.now) == []


def test_the_forger_is_named_by_the_pid_its_own_signatures_speak_for() -> None:
    v = verifier()
    talk = Talk(v)
    own = FrameSigner(MID, 2, MEMBER.key, MEMBER)
    (sig,) = own.add(0, 0, 0, 0, b"member's frame", T0) + own.flush()
    v.on_frame((2, 0, 0), 0, 0, b"member's frame", T0)
    v.on_signature(sig, T0, ON_MEMBER)
    assert talk.run(100) == []
    v.on_signature(lie(), talk.now, ON_MEMBER)
    assert v.forgeries == [Forgery(ON_MEMBER, AUDIO, 2)]
    # its own signatures are still checked, another's lie is not
    (more,) = own.add(0, 0, 0, 1, b"member's next", T0) + own.flush()
    v.on_frame((2, 0, 0), 0, 1, b"member's next", T0)
    v.on_signature(more, T0, ON_MEMBER)
    assert v.counts((2, 0, 0)) == (2, 0)


def test_a_replayed_signature_is_dropped_and_ties_nothing() -> None:
    v = verifier()
    talk = Talk(v)
    assert talk.run(150) == []
    for sig in talk.signatures:  # copied onto the member's own sender id
        v.on_signature(sig, talk.now, ON_MEMBER)
    assert v.ties.refused == len(talk.signatures)
    assert not v.ties.speaks_for(1, ON_MEMBER)
    v.on_signature(lie(), talk.now, ON_MEMBER)
    assert v.tick(talk.now) == []
    assert v.condemned(AUDIO) is None


def test_a_new_connection_is_tied_once_the_old_one_went_quiet() -> None:
    v = verifier()
    talk = Talk(v)
    assert talk.run(100) == []
    talk.sender = ON_VICTIM_AGAIN  # back on a new connection at once
    assert talk.run(50) == []
    assert v.ties.speaks_for(1, ON_VICTIM)  # the old one signed less than 3 s ago
    assert talk.run(RETIE_QUIET_MS // FRAME_MS) == []
    assert v.ties.speaks_for(1, ON_VICTIM_AGAIN)
    v.on_signature(lie(), talk.now, ON_VICTIM)  # the old sender id is no longer the pid's
    assert v.tick(talk.now) == []
    assert v.forgeries == [Forgery(ON_VICTIM, AUDIO, None)]
    v.on_signature(lie((1, 1, 0)), talk.now, ON_VICTIM_AGAIN)
    assert v.tick(talk.now) == [StreamReport((1, 1, 0), Failure.BAD_SIGNATURE)]


def test_without_its_sender_id_a_bad_signature_is_the_named_pids() -> None:
    """(A caller that cannot say where a signature came from: as before.)"""
    v = verifier()
    talk = Talk(v)
    assert talk.run(50) == []
    v.on_signature(lie(), talk.now)
    assert v.tick(talk.now) == [StreamReport(AUDIO, Failure.BAD_SIGNATURE)]
