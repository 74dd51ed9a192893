"""Frame signatures in band (``client.meetings.signatures``): each sender's frames signed
per stream, the signatures split into signature datagrams on their track, forwarded by the
node's core along that track, reassembled and checked by every receiver with the frames it
decrypts. Honest streams stay clean; a member forging frames under another's pid (it holds
the epoch secret, so it can make that pid's SFrame key) is caught and its frames no longer
play, at every receiver (issue 18, "Done when")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from client.calls.fixture import load_fixture
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import Receiver
from client.meetings import Failure, FrameSigner, FrameVerifier, MeetingCrypto, StreamReport
from client.meetings.attribution import Forgery
from client.meetings.frameauth import SIGN_EVERY_FRAMES, SIGN_INTERVAL_MS, VERIFY_BOUND_MS
from client.meetings.framing import FixtureFrames, PidCrypto
from client.meetings.keys import SUITE, kid
from client.meetings.signatures import (
    MAX_SIGNATURE_PACKETS,
    SignatureReceiver,
    SignatureSender,
    roster_fingerprint,
)
from node.sfu import Sfu
from suites import sframe
from tests.client.meetings.kit import MID, T0, Net, verify
from wire.media import MAX_DATAGRAM, MediaKind, decode_datagram, peek_route
from wire.meeting import FrameSignature, decode_meeting

FIXTURE = load_fixture()
FRAME_MS = 20
NODE_ID = 500  # + pid: the sender id the node assigned
FORGED_CTR = 1 << 20  # the forger's SFrame counters, far ahead of its victim's


@dataclass(eq=False)
class Side:
    """One participant: its crypto, packetizer, signer and what it receives."""

    pid: int
    crypto: PidCrypto
    packetizer: Packetizer
    signing: SignatureSender | None
    checks: SignatureReceiver
    receiver: Receiver
    reports: list[StreamReport] = field(default_factory=list)
    frames: int = 0
    played: Counter[tuple[int, int | None]] = field(default_factory=Counter)
    """Frames the gate let through, per (pid, node sender id they came on)."""

    def speak(self, now: int) -> list[bytes]:
        """The datagrams of its next Opus frame, and the signature datagrams due."""
        frame = FIXTURE.frame_at(MediaKind.AUDIO, self.frames)
        self.frames += 1
        outgoing = OutgoingFrame(MediaKind.AUDIO, frame.data, True, 10 + self.pid, True)
        out = self.packetizer.packetize(outgoing, now=now / 1000)
        if self.signing is not None:
            epoch = self.crypto.send_epoch
            assert epoch is not None
            out += self.signing.sent(out, self.crypto.last_sealed, epoch, now)
            out += self.signing.tick(now)
        return out

    def take(self, datagram: bytes, now: int) -> None:
        header, payload = decode_datagram(datagram)
        if header.is_signature:
            self.checks.on_datagram(header, payload, now)
        else:
            self.crypto.arriving = header.stream.sender
            self.receiver.receive(datagram, now=now / 1000)

    def tick(self, now: int) -> None:
        self.receiver.due(now=now / 1000)
        self.reports += self.checks.tick(now)


class Forged:
    """The forger's frame crypto: SFrame under its victim's KID, from the epoch secret."""

    def __init__(self, net: Net, forger: int, victim: int) -> None:
        member = net.members[forger]
        epoch = member.send_epoch
        assert epoch is not None
        key_id = kid(epoch, victim)
        base_key = member.recv_key(key_id)
        assert base_key is not None
        self._kid = key_id
        self._ctx = sframe.SFrameContext(SUITE)
        self._ctx.add_send_key(key_id, base_key, next_ctr=FORGED_CTR)

    def protect(self, metadata: bytes, plaintext: bytes, *, now: float) -> bytes:
        return self._ctx.protect(self._kid, metadata, plaintext)

    def unprotect(self, frame: bytes, metadata: bytes, *, now: float) -> bytes:
        raise AssertionError("the forger only sends")


def side(net: Net, pid: int, *, sign: bool = True) -> Side:
    member = net.members[pid]
    checks = SignatureReceiver(FrameVerifier(MID, verify, roster_fingerprint(member)))

    played: Counter[tuple[int, int | None]] = Counter()

    def gate(
        p: int, epoch: int, metadata: bytes, ciphertext: bytes, now: float, sender: int | None
    ) -> bool:
        ok = checks.on_frame(p, epoch, metadata, ciphertext, round(now * 1000), sender)
        played[(p, sender)] += ok
        return ok

    crypto = PidCrypto(MeetingCrypto(member), gate=gate)
    person = net.people[pid]
    signing = SignatureSender(FrameSigner(MID, pid, person.key, person), NODE_ID + pid)
    return Side(
        pid,
        crypto,
        Packetizer(crypto, NODE_ID + pid),
        signing if sign else None,
        checks,
        Receiver(crypto, check=FixtureFrames(FIXTURE)),
        played=played,
    )


def run(
    sides: list[Side], ticks: int, *, start: int = T0, forger: tuple[int, Packetizer] | None = None
) -> tuple[Sfu, int]:
    """Every side speaks every 20 ms for ``ticks`` frames through one forwarding core
    (and the forger, from the middle on, as its victim); the time after the last."""
    sfu = Sfu(start)
    for s in sides:
        sfu.join(s.pid, NODE_ID + s.pid, ())
    by_pid = {s.pid: s for s in sides}
    now = start
    for tick in range(ticks):
        sent = [(s.pid, d) for s in sides for d in s.speak(now)]
        if forger is not None and tick >= ticks // 2:
            pid, packetizer = forger
            frame = FIXTURE.frame_at(MediaKind.AUDIO, tick)
            loud = OutgoingFrame(MediaKind.AUDIO, frame.data, True, 1, True)
            sent += [(pid, d) for d in packetizer.packetize(loud, now=now / 1000)]
        for conn, datagram in sent:
            for dest in sfu.on_datagram(conn, datagram):
                by_pid[dest].take(datagram, now + 5)
        now += FRAME_MS
        sfu.tick(now)
        for s in sides:
            s.tick(now)
    return sfu, now


def test_a_signature_is_split_into_datagrams_on_its_track() -> None:
    net = Net(2)
    s = side(net, 1)
    out: list[bytes] = []
    for i in range(SIGN_EVERY_FRAMES * 2):
        out += s.speak(T0 + i * FRAME_MS)
    routes = [peek_route(d) for d in out]
    assert all(r is not None for r in routes)
    signature_datagrams = [d for d, r in zip(out, routes, strict=True) if r and r[6] == 2]
    headers = [decode_datagram(d)[0] for d in signature_datagrams]
    assert {h.frame for h in headers} == {0, 1}  # two signatures, numbered on the track
    assert all(len(d) <= MAX_DATAGRAM for d in signature_datagrams)
    assert all(h.stream.sender == NODE_ID + 1 and h.stream.kind is MediaKind.AUDIO for h in headers)
    first = [decode_datagram(d)[1] for d, h in zip(signature_datagrams, headers, strict=True)]
    packets = headers[0].packets
    assert 1 < packets <= MAX_SIGNATURE_PACKETS
    signature = decode_meeting(b"".join(first[:packets]))
    assert isinstance(signature, FrameSignature)
    assert (signature.body.pid, signature.body.first) == (1, 0)
    assert len(signature.body.digests) == SIGN_EVERY_FRAMES
    assert s.signing is not None
    assert s.signing.signatures == 2
    assert s.signing.tick(T0 + 10 * SIGN_INTERVAL_MS) == []  # nothing left open
    assert s.signing.flush() == []


def test_honest_streams_verify_at_every_receiver() -> None:
    net = Net(4)
    sides = [side(net, pid) for pid in range(4)]
    _, now = run(sides, 150)
    for s in sides:
        s.tick(now + VERIFY_BOUND_MS)
        assert s.reports == [], s.pid
        assert s.checks.signatures > 0
        assert s.checks.malformed == 0
        assert s.crypto.dropped == 0
        stats = s.receiver.stats()
        assert stats.decrypt_failures == 0
        for other in sides:
            if other is not s:
                verified, unverified = s.checks.verifier.counts((other.pid, 0, 0))
                assert verified > 100, (s.pid, other.pid)
                assert unverified < SIGN_EVERY_FRAMES, (s.pid, other.pid)


def test_a_forger_under_another_pid_is_caught_by_every_receiver_and_never_played() -> None:
    """The forger's frames under the victim's pid come on the forger's own sender id, tied
    to the forger's pid by its honest signatures: every receiver drops each of them and
    reports the forger's sender id (and pid), claiming the victim's stream; the victim's
    stream is not condemned, and its own frames play all along."""
    net = Net(4)
    sides = [side(net, pid) for pid in range(4)]
    victim, forger = 1, 3
    forged = Packetizer(Forged(net, forger, victim), NODE_ID + forger)
    ticks = 200
    _, now = run(sides, ticks, forger=(forger, forged))
    for s in sides:
        s.tick(now + VERIFY_BOUND_MS)
    claimed = (victim, 0, 0)
    for s in sides:
        if s.pid in (victim, forger):
            continue  # the victim has no key for its own pid; the forger forged
        assert s.reports == [], s.pid  # no stream condemned: not the victim's, nor any other
        forgery = Forgery(NODE_ID + forger, claimed, forger, Failure.FORGED_FRAME)
        assert s.checks.forgeries == [forgery], s.pid
        assert s.crypto.dropped > 0  # the forged frames (those not refused as replays)
        assert s.receiver.stats().decrypt_failures == s.crypto.dropped  # those, none else
        assert s.played[(victim, NODE_ID + forger)] == 0  # never played
        mine = s.played[(victim, NODE_ID + victim)]  # the victim's: all that came, played
        assert mine == s.played[(2 - s.pid, NODE_ID + 2 - s.pid)] > ticks - SIGN_EVERY_FRAMES
        for honest in (0, 1, 2, 3):
            if honest != s.pid:
                assert s.checks.verifier.condemned((honest, 0, 0)) is None
        verified, _ = s.checks.verifier.counts(claimed)
        assert verified > ticks - SIGN_EVERY_FRAMES, s.pid  # its frames still verify
    assert sides[victim].reports == []
    assert sides[forger].reports == []


def test_a_bad_signature_naming_another_pid_is_blamed_on_the_sender_id_it_came_on() -> None:
    """A member sends, on its own node sender id, one signature naming another pid (with
    that pid's key, signed by itself): no receiver condemns the pid it names; each reports
    the member's sender id, tied to the member's own pid by its honest signatures."""
    net = Net(4)
    sides = [side(net, pid) for pid in range(4)]
    victim, liar = 1, 3
    sfu, now = run(sides, 2 * SIGN_EVERY_FRAMES)
    person = net.people[liar]
    fake = SignatureSender(FrameSigner(MID, victim, net.people[victim].key, person), NODE_ID + liar)
    out = sides[liar].speak(now)
    epoch = sides[liar].crypto.send_epoch
    assert epoch is not None
    assert fake.sent(out, sides[liar].crypto.last_sealed, epoch, now) == []
    for datagram in out + fake.flush():
        for dest in sfu.on_datagram(liar, datagram):
            sides[dest].take(datagram, now + 5)
    _, now = run(sides, 2 * SIGN_EVERY_FRAMES, start=now + FRAME_MS)
    for s in sides:
        s.tick(now + VERIFY_BOUND_MS)
        assert s.reports == [], s.pid
        if s.pid not in (victim, liar):
            forged = Forgery(NODE_ID + liar, (victim, 0, 0), liar)
            assert s.checks.verifier.forgeries == [forged], s.pid
            assert s.checks.verifier.counts((victim, 0, 0))[0] > 3 * SIGN_EVERY_FRAMES


def test_a_sender_that_does_not_sign_is_condemned_as_unsigned() -> None:
    net = Net(3)
    sides = [side(net, 0), side(net, 1), side(net, 2, sign=False)]
    _, now = run(sides, 250)
    for s in sides[:2]:
        s.tick(now + VERIFY_BOUND_MS)
        assert s.reports == [StreamReport((2, 0, 0), Failure.UNSIGNED)], s.pid
    assert sides[2].reports == []  # it checks the others, who sign


def test_garbage_in_signature_datagrams_is_counted_not_raised() -> None:
    net = Net(2)
    s = side(net, 0)
    other = side(net, 1)
    signature = [d for i in range(SIGN_EVERY_FRAMES) for d in other.speak(T0 + i * FRAME_MS)]
    datagrams = [d for d in signature if decode_datagram(d)[0].is_signature]
    header, _ = decode_datagram(datagrams[0])
    packets = header.packets
    for i, datagram in enumerate(datagrams[:packets]):
        h, p = decode_datagram(datagram)
        s.checks.on_datagram(h, p if i else b"\x00" + p[1:], T0)  # a signature that does not decode
    assert s.checks.malformed == 1
    assert s.checks.signatures == 0
    for datagram in datagrams[:packets]:
        h, p = decode_datagram(datagram)
        s.checks.on_datagram(h, p, T0)
    assert s.checks.signatures == 1
