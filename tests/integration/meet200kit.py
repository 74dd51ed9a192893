"""The simulated participants of ``test_meeting_200`` (issue 18): each runs the client's
real key schedule (:class:`KeyNet`), SFrame and frame signatures; a forger; the CPU seconds
of the test and node processes."""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from client.calls.packetizer import OutgoingFrame, Packetizer
from client.meetings.frameauth import FrameSigner, FrameVerifier
from client.meetings.framing import PidCrypto
from client.meetings.keys import SUITE, MeetingLeader, MeetingMember, kid
from client.meetings.media import MeetingCrypto
from client.meetings.signatures import SignatureReceiver, SignatureSender, roster_fingerprint
from suites import sframe
from tests.client.meetings.kit import MID, T0, Draws, Net, Person
from tests.client.meetings.kit import verify as suite_verify
from tests.integration.fedharness import LocalFederation
from transport import MediaTransport, TransportError
from wire import WireError
from wire.media import (
    SILENCE,
    TYPE_SIGNATURE,
    VERSION,
    MediaHeader,
    MediaKind,
    StreamId,
    decode_datagram,
    encode_datagram,
    frame_metadata,
)
from wire.relay import LegGrant

SIGNATURE_BYTE: Final = VERSION << 4 | TYPE_SIGNATURE
"""The first byte of a signature datagram (``wire.media.TYPE_SIGNATURE``)."""
FORGED_CTR_AHEAD: Final = 512
"""The forger's SFrame counters run this far ahead of its victim's (inside the receivers'
anti-replay window, so neither stream's frames are refused as replays)."""


class KeyNet(Net):
    """``tests.client.meetings.kit.Net`` for a meeting that starts with everyone in it: the
    leader's first epoch goes to all at once (one roster signed), not one join at a time."""

    def __init__(self, people: int) -> None:
        self.people = [Person(f"p{i}") for i in range(people)]
        self.keys = {pid: person.key for pid, person in enumerate(self.people)}
        self.random = Draws()
        entries = tuple(person.entry(pid) for pid, person in enumerate(self.people))
        first = self.people[0]
        self.members = {pid: MeetingMember(MID, pid, SharedVerify()) for pid in self.keys}
        self.leader = MeetingLeader(
            MID, entries[0], first.key, first, self.members[0].verify, self.random, T0,
            participants=entries, member=self.members[0],
        )  # fmt: skip
        self.log, self.deaf, self.no_ack, self.rosters = [], set(), set(), {}
        self.deliver(self.leader.sends(), T0)


class SharedVerify:
    """The suite's signature check, its outcome per (key, message, signature, context)
    computed once in this process and shared by every receiver here: each receiver's
    :class:`~client.meetings.frameauth.FrameVerifier` still checks every signature it gets
    (and every roster), but hundreds of receivers get the very same signature bytes, and
    ML-DSA verification of each in each would take the CPU the media needs."""

    _seen: Final[dict[tuple[bytes, bytes, bytes, bytes], bool]] = {}
    calls = 0

    def __call__(self, key: bytes, message: bytes, signature: bytes, context: bytes) -> None:
        SharedVerify.calls += 1
        at = (key, message, signature, context)
        good = self._seen.get(at)
        if good is None:
            try:
                suite_verify(key, message, signature, context)
                good = True
            except Exception:
                good = False
            self._seen[at] = good
        if not good:
            raise ValueError("signature does not verify")


@dataclass(eq=False)
class Sim:
    """One simulated participant: its key schedule's member, SFrame keys (sending and
    receiving), frame signer and frame verifier, and what reached it."""

    pid: int
    member: MeetingMember
    person: Person
    level: int | None
    """RFC 6464 level it speaks at; None: silent (no voice activity)."""
    media: MediaTransport | None = None
    sender: int = 0
    grant: LegGrant | None = None
    audio: Counter[int] = field(default_factory=Counter)
    """Audio datagrams received per sender id, after the warm-up."""
    opened: Counter[tuple[int, int]] = field(default_factory=Counter)
    """Frames opened (and let through by the frame verifier) per (epoch, sender pid)."""
    played: Counter[tuple[int, int]] = field(default_factory=Counter)
    """Frames let through by the frame verifier per (pid, node sender id)."""
    refused: Counter[tuple[int, int]] = field(default_factory=Counter)
    """Frames that authenticated but that the frame verifier refused, per (pid, node
    sender id): not their pid's, or of a condemned stream."""
    videos: set[int] = field(default_factory=set)
    no_key: int = 0
    failures: int = 0
    counting: bool = False
    audio_out: int = 0
    """Audio datagrams it sent while arrivals were counted (the forger's forged ones too)."""

    sent: Counter[int] = field(default_factory=Counter)
    """Frames sent per epoch (the SFrame counter of this epoch's key)."""

    def __post_init__(self) -> None:
        self.keys = MeetingCrypto(self.member)
        self.crypto = PidCrypto(self.keys)
        verifier = FrameVerifier(MID, self.member.verify, roster_fingerprint(self.member))
        self.checks = SignatureReceiver(verifier)

    def bind(self, media: MediaTransport, sender: int) -> None:
        self.media, self.sender = media, sender
        self.packetizer = Packetizer(self.crypto, sender)
        signer = FrameSigner(MID, self.pid, self.person.key, self.person)
        self.signing = SignatureSender(signer, sender)

    def frame(
        self, kind: MediaKind, data: bytes, layer: int = 0, *, sign: bool = True
    ) -> list[bytes]:
        """The datagrams of one frame (and of the signatures it makes due)."""
        level = self.level
        out = OutgoingFrame(
            kind, data, True, level if level is not None else SILENCE, level is not None, layer
        )
        now = time.time()
        datagrams = self.packetizer.packetize(out, now=now)
        epoch = self.crypto.send_epoch
        assert epoch is not None
        self.sent[epoch] += 1
        if not sign:
            return datagrams
        return datagrams + self.signing.sent(datagrams, self.crypto.last_sealed, epoch, ms(now))

    def receive(self, data: bytes) -> None:
        """One datagram: a signature's to its reassembly; a frame (each is one datagram
        here) opened, whatever its stream, and handed with its node sender id to the frame
        verifier, which decides whether it plays (and counts in the anti-replay window), as
        in the client (``client.meetings.framing.PidCrypto``)."""
        now = ms(time.time())
        try:
            header, payload = decode_datagram(data)
        except WireError:
            self.failures += 1
            return
        if data[0] == SIGNATURE_BYTE:
            self.checks.on_datagram(header, payload, now)
            return
        if self.counting and header.stream.kind is MediaKind.AUDIO:
            self.audio[header.stream.sender] += 1
        metadata = frame_metadata(header)
        sender = header.stream.sender

        def admit(pid: int, epoch: int) -> bool:
            ok = self.checks.on_frame(pid, epoch, metadata, payload, now, sender)
            (self.played if ok else self.refused)[(pid, sender)] += 1
            return ok

        try:
            opened = self.keys.open(payload, metadata, admit)
        except sframe.UnknownKidError:
            self.no_key += 1
            return
        except sframe.SFrameError:
            self.failures += 1
            return
        if opened is None:
            return
        pid, epoch, _ = opened
        self.opened[(epoch, pid)] += 1
        if header.stream.kind is MediaKind.VIDEO:
            self.videos.add(pid)

    async def listen(self) -> None:
        assert self.media is not None
        while True:
            try:
                batch = await self.media.receive_datagram_batch()
            except TransportError:
                return
            for data in batch:
                self.receive(data)


def is_audio(data: bytes) -> bool:
    """Whether a media datagram (not a signature datagram) carries audio."""
    return decode_datagram(data)[0].stream.kind is MediaKind.AUDIO


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds (the frame verifier's clock)."""
    return round(seconds * 1000)


def now_ms(started: float) -> int:
    """The key schedule's clock (ms): ``tests.client.meetings.kit.T0`` at ``started``."""
    return T0 + ms(trio.current_time() - started)


class Forger:
    """SFrame under ``victim``'s KID from the epoch secret ``forger`` holds as a member, at
    the victim's audio frame indices (the same metadata, another ciphertext), on the
    forger's own (node-bound) stream at its level."""

    def __init__(self, forger: Sim, victim: Sim, payload: bytes) -> None:
        self.forger, self.victim, self._payload = forger, victim, payload
        self._ctx: sframe.SFrameContext | None = None
        self._kid = 0

    def datagram(self) -> bytes:
        epoch = self.victim.member.send_epoch
        assert epoch is not None
        if self._ctx is None or self._kid != kid(epoch, self.victim.pid):
            self._kid = kid(epoch, self.victim.pid)
            base_key = self.forger.member.recv_key(self._kid)
            assert base_key is not None
            self._ctx = sframe.SFrameContext(SUITE)
            ctr = self.victim.sent[epoch] + FORGED_CTR_AHEAD
            self._ctx.add_send_key(self._kid, base_key, next_ctr=ctr)
        index = self.victim.packetizer.frames_sent - 1  # the victim's last audio frame
        level = self.forger.level
        assert level is not None
        header = MediaHeader(
            StreamId(self.forger.sender, MediaKind.AUDIO), group=index, object=0, frame=index,
            packet=0, packets=1, keyframe=True, audio_level=level, voice=True,
        )  # fmt: skip
        sealed = self._ctx.protect(self._kid, frame_metadata(header), self._payload)
        return encode_datagram(header, sealed)


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) of process ``pid`` so far, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now(fed: LocalFederation) -> dict[str, float]:
    """CPU seconds so far of this process (``test``) and of each domain's node process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"test": usage.ru_utime + usage.ru_stime}
    for domain, node in fed.nodes.items():
        assert node.proc is not None
        out[domain] = cpu_seconds(node.proc.pid)
    return out
