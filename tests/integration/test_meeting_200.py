"""A meeting of :data:`PARTICIPANTS` people over three domains for :data:`SECONDS` s, through
three real node processes (issue 18, the first "Done when").

alpha hosts (its node is the anchor); bravo's and charlie's participants join over their own
nodes' one media link to alpha (``MeetingJoinAt``, as ``test_node_meetings_cascade``). Every
participant is simulated in this test process, each on a QUIC connection of its own to its
own node, and runs the client's real key schedule (``client.meetings.keys``: one
:class:`~client.meetings.keys.MeetingLeader`, a :class:`~client.meetings.keys.MeetingMember`
each; the key messages are handed over in-process, :class:`KeyNet`, not over the pairwise
sessions), SFrame (``client.meetings.media.MeetingCrypto``, KID = (epoch, pid)) and frame
signatures (``client.meetings.signatures``: each sender signs its streams, every receiver
runs its own :class:`~client.meetings.frameauth.FrameVerifier`).

Four speakers, spread over the domains, send SFrame-encrypted audio with RFC 6464 levels
every :data:`AUDIO_PERIOD` s (not every 20 ms: the whole meeting shares this process and
two cores with the three nodes), two more murmur (voice activity, quieter), the rest
send a silent frame now and then (discontinuous transmission); three video senders, one
per domain, send two simulcast layers; :data:`WATCHERS` participants per domain ask for
three videos. Checked:

- every participant receives audio from exactly the dominant speaker and the three loudest
  others, never itself (:func:`heard_by`: the four speakers; for a speaker, the other
  three and mostly the louder murmur; no silence), at least
  :data:`RECEIVED_AT_LEAST` of what each sent, whichever domain it is in; video watchers
  receive the video senders of every domain, the others no video;
- every frame that arrives decrypts (0 failures; a frame under an epoch the receiver does
  not hold is no failure, and comes only to the removed participant and to the forger's
  victim, who holds no key for its own pid);
- mid-run the key leader removes :data:`REMOVED` (leave rekey, batched, switch on acks):
  it stays connected and receives, and opens nothing after the switch, while everyone else
  opens every speaker under the new epoch;
- near the end :data:`FORGER` (a speaker, a member holding the epoch secret) sends frames
  under :data:`VICTIM`'s pid on its own stream; every participant that receives and opens
  them (all but the forger, the victim and the removed one) reports the victim's audio
  stream as forged, and no honest stream is reported anywhere.

ML-DSA verification: each receiver verifies every signature of every stream it receives,
but the cryptographic check of one (key, body, signature) is computed once per process and
its outcome shared (:class:`SharedVerify`): 200 receivers get the very same signature
bytes, and checking them 200 times would take the CPU the media needs.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
import trio

from client.app import Client
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.meetings.frameauth import FrameSigner, FrameVerifier
from client.meetings.framing import PidCrypto
from client.meetings.keys import SUITE, MeetingLeader, MeetingMember, kid
from client.meetings.media import MeetingCrypto
from client.meetings.net import TICK
from client.meetings.signatures import SignatureReceiver, SignatureSender, roster_fingerprint
from node.sfu import AUDIO_STREAMS
from suites import sframe
from tests.client.meetings.kit import MID, T0, Draws, Net, Person
from tests.client.meetings.kit import verify as suite_verify
from tests.integration.fedharness import LocalFederation, wait_until
from tests.integration.fedharness import Person as Account
from transport import MediaTransport, TransportError
from wire import WireError
from wire.media import (
    TYPE_SIGNATURE,
    VERSION,
    MediaHeader,
    MediaKind,
    StreamId,
    decode_datagram,
    encode_datagram,
    frame_metadata,
)
from wire.relay import LegGrant, MeetingJoinAt, MeetingLayerSpec, MeetingVideo, Ok

pytestmark = pytest.mark.long

ALPHA: Final = "alpha.test"
BRAVO: Final = "bravo.test"
CHARLIE: Final = "charlie.test"
DOMAINS: Final = (ALPHA, BRAVO, CHARLIE)
ACCOUNTS: Final = {ALPHA: "amalia", BRAVO: "bertrand", CHARLIE: "clementine"}
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
PARTICIPANTS: Final = 200
SECONDS: Final = float(os.environ.get("SEALRELAY_MEET200_SECONDS", "60"))
"""The meeting's length (shorten it only while developing)."""
AUDIO_PERIOD: Final = 0.1
"""Seconds between two audio frames of a voice (module docstring)."""
VIDEO_PERIOD: Final = 0.2
SPEAKERS: Final = {0: 5, 70: 15, 140: 25, 100: 35}
"""pid -> RFC 6464 level (lower is louder): alpha 0, bravo 70 and 100, charlie 140."""
MURMURS: Final = {40: 90, 160: 100}
"""Two more voices (voice activity set), quieter than the four: never among the loudest."""
VOICES: Final = SPEAKERS | MURMURS
SILENT_EVERY: Final = 4
"""A silent participant sends one silent frame every this many rounds of
:data:`AUDIO_PERIOD` (0.4 s: discontinuous transmission); the node drops them, so nobody receives
them and they go unsigned here (a real client signs them too)."""
VIDEO_SENDERS: Final = (1, 71, 141)
LAYERS: Final = (MeetingLayerSpec(180, 150), MeetingLayerSpec(360, 500))
WATCHERS: Final = 8
"""Video watchers per domain: the last of each domain's participants."""
WATCH: Final = (3, 360, 2000)
REMOVED: Final = 110
FORGER: Final = 100
VICTIM: Final = 140
FORGED_CTR_AHEAD: Final = 512
"""The forger's SFrame counters run this far ahead of its victim's (inside the receivers'
anti-replay window, so neither stream's frames are refused as replays)."""
RECEIVED_AT_LEAST: Final = 0.9
"""Share of a speaker's audio datagrams (sent while arrivals were counted) that each of
the others must receive: datagrams may be lost, not the selection."""
SIGNATURE_BYTE: Final = VERSION << 4 | TYPE_SIGNATURE
WARM_UP: Final = 3.0
"""Seconds before arrivals are counted (the speakers recomputed several times)."""
REMOVE_AT: Final = 0.4
FORGE_FOR: Final = 6.0
DRAIN: Final = 2.0
IN_FLIGHT: Final = 1.0
"""Seconds after the switch for frames sent before it to arrive."""
SWITCH_WITHIN: Final = 10.0
TIME_LIMIT: Final = SECONDS + 150.0
AUDIO_BYTES: Final = b"opus frame the nodes never read." * 3
VIDEO_BYTES: Final = b"vp8 frame the nodes never read." * 16


def domain_of(pid: int) -> str:
    """alpha holds the first third of the pids, bravo the second, charlie the rest."""
    third = -(-PARTICIPANTS // 3)
    return DOMAINS[min(pid // third, 2)]


def heard_by(pid: int) -> tuple[set[int], set[int]]:
    """The voices ``pid`` must hear all along (the four loudest but itself,
    ``node.sfu.core``: the speakers) and those that may fill a place left (a speaker's
    fourth: the murmurs, whose ranking swaps whenever a starved sender skips an interval)."""
    sure = set(SPEAKERS) - {pid}
    return sure, set(MURMURS) if len(sure) < AUDIO_STREAMS else set()


def watchers() -> set[int]:
    out: set[int] = set()
    for domain in DOMAINS:
        pids = [p for p in range(PARTICIPANTS) if domain_of(p) == domain]
        out.update(pids[-WATCHERS:])
    return out - {REMOVED}


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
        self.log, self.deaf, self.no_ack = [], set(), set()
        self.deliver(self.leader.sends(), T0)


class SharedVerify:
    """The suite's signature check, its outcome per (key, message, signature, context)
    computed once in this process (module docstring)."""

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
    """One simulated participant (module docstring)."""

    pid: int
    member: MeetingMember
    person: Person
    media: MediaTransport | None = None
    sender: int = 0
    grant: LegGrant | None = None
    audio: Counter[int] = field(default_factory=Counter)
    """Audio datagrams received per sender id, after the warm-up."""
    opened: Counter[tuple[int, int]] = field(default_factory=Counter)
    """Frames opened per (epoch, sender pid)."""
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
        level = VOICES.get(self.pid)
        out = OutgoingFrame(
            kind, data, True, level if level is not None else 127, level is not None, layer
        )
        now = time.time()
        datagrams = self.packetizer.packetize(out, now=now)
        epoch = self.crypto.send_epoch
        assert epoch is not None
        self.sent[epoch] += 1
        if not sign:
            return datagrams
        return datagrams + self.signing.sent(datagrams, self.crypto.last_sealed, epoch, _ms(now))

    def receive(self, data: bytes) -> None:
        """One datagram: a signature's to its reassembly; a frame (each is one datagram
        here) opened, whatever its stream, and handed to the frame verifier."""
        now = _ms(time.time())
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
        try:
            pid, epoch, _ = self.keys.unprotect(payload, metadata)
        except sframe.UnknownKidError:
            self.no_key += 1
            return
        except sframe.SFrameError:
            self.failures += 1
            return
        self.opened[(epoch, pid)] += 1
        if header.stream.kind is MediaKind.VIDEO:
            self.videos.add(pid)
        self.checks.on_frame(pid, epoch, metadata, payload, now)

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


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _now_ms(started: float) -> int:
    return T0 + _ms(trio.current_time() - started)


@pytest.fixture(scope="module")
def accounts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalFederation, dict[str, Account]]]:
    base = tmp_path_factory.mktemp("meet200")
    fed = LocalFederation(base / "fed", list(DOMAINS), extra=EXTRA)
    try:
        fed.start()
        homes = {name: (domain, base / name) for domain, name in ACCOUNTS.items()}
        enrolled = trio.run(fed.enroll_all, homes)
        yield fed, {domain: enrolled[name] for domain, name in ACCOUNTS.items()}
    finally:
        fed.close()


class Forger:
    """SFrame under :data:`VICTIM`'s KID from the epoch secret :data:`FORGER` holds as a
    member, at the victim's frame indices, on the forger's own (node-bound) stream."""

    def __init__(self, forger: Sim, victim: Sim) -> None:
        self.forger, self.victim = forger, victim
        self._ctx: sframe.SFrameContext | None = None
        self._kid = 0

    def datagram(self) -> bytes:
        epoch = self.victim.member.send_epoch
        assert epoch is not None
        if self._ctx is None or self._kid != kid(epoch, VICTIM):
            self._kid = kid(epoch, VICTIM)
            base_key = self.forger.member.recv_key(self._kid)
            assert base_key is not None
            self._ctx = sframe.SFrameContext(SUITE)
            ctr = self.victim.sent[epoch] + FORGED_CTR_AHEAD
            self._ctx.add_send_key(self._kid, base_key, next_ctr=ctr)
        index = self.victim.packetizer.frames_sent - 1  # the victim's last audio frame
        header = MediaHeader(
            StreamId(self.forger.sender, MediaKind.AUDIO), group=index, object=0, frame=index,
            packet=0, packets=1, keyframe=True, audio_level=SPEAKERS[FORGER], voice=True,
        )  # fmt: skip
        sealed = self._ctx.protect(self._kid, frame_metadata(header), AUDIO_BYTES)
        return encode_datagram(header, sealed)


@dataclass
class Run:
    sims: dict[int, Sim]
    removed_epoch: int = 0
    switch_s: float = 0.0
    removed_opened_at: int = 0
    removed_no_key_at: int = 0
    counted_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    join_s: float = 0.0


async def _join(client: Client, sim: Sim, room: bytes) -> None:
    layers = LAYERS if sim.pid in VIDEO_SENDERS else ()
    grant = await client.link.request(MeetingJoinAt(0, room, layers, ALPHA))
    assert isinstance(grant, LegGrant), grant
    sim.grant = grant
    sim.bind(*await client.media_quic(grant))


class Meeting:
    """The simulated participants' media, key ticks and signature checks."""

    def __init__(self, net: KeyNet, sims: dict[int, Sim]) -> None:
        self.net, self.sims = net, sims
        self.forger = Forger(sims[FORGER], sims[VICTIM])
        self.forging = False
        self.started = 0.0

    async def keys(self) -> None:
        while True:
            await trio.sleep(TICK)
            self.net.tick(_now_ms(self.started))

    async def checks(self) -> None:
        while True:
            await trio.sleep(0.2)
            now = _ms(time.time())
            for sim in self.sims.values():
                sim.checks.tick(now)

    async def send(self) -> None:
        speakers = [self.sims[p] for p in VOICES]
        silent = [s for s in self.sims.values() if s.pid not in VOICES]
        cameras = [self.sims[p] for p in VIDEO_SENDERS]
        next_at, rounds = trio.current_time(), 0
        per_video = round(VIDEO_PERIOD / AUDIO_PERIOD)
        while True:
            out: dict[int, list[bytes]] = {}
            for sim in speakers:
                out[sim.pid] = sim.frame(MediaKind.AUDIO, AUDIO_BYTES)
            for sim in silent:
                if (rounds + sim.pid) % SILENT_EVERY == 0 and sim.member.send_epoch is not None:
                    out[sim.pid] = sim.frame(MediaKind.AUDIO, AUDIO_BYTES, sign=False)
            if rounds % per_video == 0:
                for sim in cameras:
                    for layer in range(len(LAYERS)):
                        out.setdefault(sim.pid, []).extend(
                            sim.frame(MediaKind.VIDEO, VIDEO_BYTES, layer)
                        )
            now = _ms(time.time())
            for sim in {*speakers, *cameras}:
                out.setdefault(sim.pid, []).extend(sim.signing.tick(now))
            if self.forging:
                out[FORGER].append(self.forger.datagram())
            for pid, datagrams in out.items():
                sim = self.sims[pid]
                assert sim.media is not None
                if sim.counting:
                    sim.audio_out += sum(d[0] != SIGNATURE_BYTE and is_audio(d) for d in datagrams)
                await sim.media.send_datagrams(datagrams)
            rounds += 1
            next_at += AUDIO_PERIOD
            await trio.sleep_until(next_at)

    async def remove(self, run: Run) -> None:
        """The leader removes :data:`REMOVED`; returns once every other member sends under
        the new epoch."""
        before = self.net.leader.epoch
        self.net.leader.leave(REMOVED, _now_ms(self.started))
        self.net.deaf.add(REMOVED)
        started = trio.current_time()
        rest = [m for pid, m in self.net.members.items() if pid != REMOVED]

        def switched() -> bool:
            return all(m.send_epoch == self.net.leader.epoch > before for m in rest)

        await wait_until(switched, SWITCH_WITHIN, "every other member switched", poll=0.02)
        run.switch_s = trio.current_time() - started
        run.removed_epoch = self.net.leader.epoch
        gone = self.sims[REMOVED]
        assert not gone.member.holds(run.removed_epoch)
        await trio.sleep(IN_FLIGHT)
        run.removed_opened_at = sum(gone.opened.values())
        run.removed_no_key_at = gone.no_key


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_now(fed: LocalFederation) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"test": usage.ru_utime + usage.ru_stime}
    for domain, node in fed.nodes.items():
        assert node.proc is not None
        out[domain] = _cpu(node.proc.pid)
    return out


def test_a_meeting_of_200_over_three_domains(
    accounts: tuple[LocalFederation, dict[str, Account]],
) -> None:
    fed, people = accounts
    net = KeyNet(PARTICIPANTS)
    sims = {pid: Sim(pid, net.members[pid], net.people[pid]) for pid in range(PARTICIPANTS)}
    room = os.urandom(16)

    async def main() -> Run:
        run = Run(sims)
        async with AsyncExitStack() as stack:
            clients = {d: people[d].load() for d in DOMAINS}
            for client in clients.values():
                await stack.enter_async_context(client.online())
            with trio.fail_after(TIME_LIMIT):
                joined = trio.current_time()
                await _join(clients[ALPHA], sims[0], room)  # the anchor's room first
                limit = trio.CapacityLimiter(8)

                async def one(sim: Sim) -> None:
                    async with limit:
                        await _join(clients[domain_of(sim.pid)], sim, room)

                async with trio.open_nursery() as joins:
                    for sim in list(sims.values())[1:]:
                        joins.start_soon(one, sim)
                run.join_s = trio.current_time() - joined
                for pid in watchers():
                    sim = sims[pid]
                    assert sim.grant is not None
                    request = MeetingVideo(0, sim.grant.leg_id, *WATCH)
                    assert isinstance(await clients[domain_of(pid)].link.request(request), Ok)
                await _meet(fed, Meeting(net, sims), run)
        return run

    run = trio.run(main)
    _check(run)


async def _meet(fed: LocalFederation, meeting: Meeting, run: Run) -> None:
    sims = meeting.sims
    meeting.started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for sim in sims.values():
            nursery.start_soon(sim.listen)
        nursery.start_soon(meeting.keys)
        nursery.start_soon(meeting.checks)
        nursery.start_soon(meeting.send)
        await trio.sleep(WARM_UP)
        cpu = _cpu_now(fed)
        counted = trio.current_time()
        for sim in sims.values():
            sim.counting = True
        await trio.sleep(max(0.0, REMOVE_AT * SECONDS - WARM_UP))
        await meeting.remove(run)
        await trio.sleep_until(meeting.started + SECONDS - FORGE_FOR - DRAIN)
        meeting.forging = True
        await trio.sleep(FORGE_FOR)
        meeting.forging = False
        await trio.sleep(DRAIN)
        for sim in sims.values():
            sim.counting = False
        run.counted_s = trio.current_time() - counted
        end = _cpu_now(fed)
        run.cpu = {k: round((end[k] - cpu[k]) / run.counted_s, 3) for k in cpu}
        nursery.cancel_scope.cancel()
    for sim in sims.values():
        sim.checks.tick(_ms(time.time()))
    print(  # the figures of the run (pytest -s)
        f"meet200: {PARTICIPANTS} participants, {SECONDS:.0f} s, join {run.join_s:.1f} s, "
        f"switch {run.switch_s:.2f} s, cores used per process {run.cpu}, "
        f"signature checks {SharedVerify.calls} ({len(SharedVerify._seen)} computed), "
        f"reports {Counter(str(r.reason) for s in sims.values() for r in s.checks.reports)}, "
        f"audio datagrams received {sum(sum(s.audio.values()) for s in sims.values())} in "
        f"{run.counted_s:.1f} s, sent per voice {[sims[p].audio_out for p in VOICES]} "
        f"({sims[0].audio_out / run.counted_s:.1f} frames/s of {1 / AUDIO_PERIOD:.0f}), "
        f"least share of a speaker received {_least_share(sims):.3f}"
    )


def _least_share(sims: dict[int, Sim]) -> float:
    """The least share of a speaker's audio (sent while counted) that another received."""
    return min(
        sim.audio[sims[p].sender] / max(sims[p].audio_out, 1)
        for pid, sim in sims.items()
        for p in heard_by(pid)[0]
    )


def _check(run: Run) -> None:
    sims = run.sims
    pids = {sim.sender: pid for pid, sim in sims.items()}
    sent = {p: sims[p].audio_out for p in VOICES}
    for pid, sim in sims.items():
        where = (pid, domain_of(pid))
        heard = {pids[sender]: n for sender, n in sim.audio.items()}
        sure, spare = heard_by(pid)
        report = f"{where} heard {heard}, sent {sent}"
        assert sure <= set(heard) <= sure | spare, report
        for voice in sure:
            assert heard[voice] >= RECEIVED_AT_LEAST * sent[voice], report
        if spare:  # the fourth place: the louder murmur, now and then the other
            louder, quieter = sorted(MURMURS, key=MURMURS.__getitem__)
            filled = heard.get(louder, 0) + heard.get(quieter, 0)
            assert filled >= RECEIVED_AT_LEAST * sent[louder], report
            assert heard.get(louder, 0) > heard.get(quieter, 0), report
        assert sim.failures == 0, (where, sim.failures)
        if pid not in (VICTIM, REMOVED):
            assert sim.no_key == 0, (where, sim.no_key)
    for pid, sim in sims.items():
        if pid in watchers():
            assert sim.videos >= set(VIDEO_SENDERS) - {pid}, (pid, sim.videos)
        else:
            assert not sim.videos, (pid, sim.videos)  # it asked for none
    _check_removal(run)
    _check_forgery(run)


def _check_removal(run: Run) -> None:
    gone, epoch = run.sims[REMOVED], run.removed_epoch
    assert sum(n for (e, _), n in gone.opened.items() if e >= epoch) == 0, gone.opened
    assert sum(gone.opened.values()) == run.removed_opened_at > 0, gone.opened
    assert gone.no_key > run.removed_no_key_at, (gone.no_key, run.removed_no_key_at)
    for pid, sim in run.sims.items():
        if pid == REMOVED:
            continue
        for speaker in set(SPEAKERS) - {pid}:
            assert sim.opened[(epoch, speaker)] > 0, (pid, speaker, sim.opened)


def _check_forgery(run: Run) -> None:
    for pid, sim in run.sims.items():
        streams = [(r.stream, str(r.reason)) for r in sim.checks.reports]
        if pid in (FORGER, VICTIM, REMOVED):
            assert streams == [], (pid, streams)
            continue
        assert len(streams) == 1, (pid, streams)
        assert streams[0][0] == (VICTIM, int(MediaKind.AUDIO), 0), (pid, streams)
        assert streams[0][1] in ("forged_frame", "unsigned"), (pid, streams)
