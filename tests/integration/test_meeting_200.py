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
  them (all but the forger, the victim and the removed one) refuses every one of them and
  reports the forger's sender id (and its pid, tied to it by its own signatures) as
  forging the victim's audio stream, once; no stream is condemned anywhere, the victim's
  least: each of them goes on playing the victim's own frames through the forgery.

ML-DSA verification: each receiver verifies every signature of every stream it receives,
but the cryptographic check of one (key, body, signature) is computed once per process and
its outcome shared (:class:`SharedVerify`): 200 receivers get the very same signature
bytes, and checking them 200 times would take the CPU the media needs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Final

import pytest
import trio

from client.app import Client
from client.meetings.attribution import Failure, Forgery
from client.meetings.net import TICK
from node.sfu import AUDIO_STREAMS
from tests.integration.fedharness import LocalFederation, wait_until
from tests.integration.fedharness import Person as Account
from tests.integration.meet200kit import (
    SIGNATURE_BYTE,
    Forger,
    KeyNet,
    SharedVerify,
    Sim,
    cpu_now,
    is_audio,
    ms,
    now_ms,
)
from wire.media import (
    MediaKind,
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
RECEIVED_AT_LEAST: Final = 0.9
"""Share of a speaker's audio datagrams (sent while arrivals were counted) that each of
the others must receive: datagrams may be lost, not the selection."""
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
    victim_sent: list[int] = field(default_factory=list)
    """The victim's frames sent when the forging starts and when it stops."""
    victim_played: list[dict[int, int]] = field(default_factory=list)
    """Each participant's frames of the victim played then (on the victim's sender id)."""


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
        self.forger = Forger(sims[FORGER], sims[VICTIM], AUDIO_BYTES)
        self.forging = False
        self.started = 0.0

    async def keys(self) -> None:
        while True:
            await trio.sleep(TICK)
            self.net.tick(now_ms(self.started))

    async def checks(self) -> None:
        while True:
            await trio.sleep(0.2)
            now = ms(time.time())
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
            now = ms(time.time())
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
        self.net.leader.leave(REMOVED, now_ms(self.started))
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


def test_a_meeting_of_200_over_three_domains(
    accounts: tuple[LocalFederation, dict[str, Account]],
) -> None:
    fed, people = accounts
    net = KeyNet(PARTICIPANTS)
    sims = {
        pid: Sim(pid, net.members[pid], net.people[pid], VOICES.get(pid))
        for pid in range(PARTICIPANTS)
    }
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
        cpu = cpu_now(fed)
        counted = trio.current_time()
        for sim in sims.values():
            sim.counting = True
        await trio.sleep(max(0.0, REMOVE_AT * SECONDS - WARM_UP))
        await meeting.remove(run)
        await trio.sleep_until(meeting.started + SECONDS - FORGE_FOR - DRAIN)
        _note_victim(run)
        meeting.forging = True
        await trio.sleep(FORGE_FOR)
        meeting.forging = False
        _note_victim(run)
        await trio.sleep(DRAIN)
        for sim in sims.values():
            sim.counting = False
        run.counted_s = trio.current_time() - counted
        end = cpu_now(fed)
        run.cpu = {k: round((end[k] - cpu[k]) / run.counted_s, 3) for k in cpu}
        nursery.cancel_scope.cancel()
    for sim in sims.values():
        sim.checks.tick(ms(time.time()))
    print(  # the figures of the run (pytest -s)
        f"meet200: {PARTICIPANTS} participants, {SECONDS:.0f} s, join {run.join_s:.1f} s, "
        f"switch {run.switch_s:.2f} s, cores used per process {run.cpu}, "
        f"signature checks {SharedVerify.calls} ({len(SharedVerify._seen)} computed), "
        f"reports {Counter(str(r.reason) for s in sims.values() for r in s.checks.reports)}, "
        f"forgers reported {sum(len(s.checks.forgeries) for s in sims.values())}, "
        f"audio datagrams received {sum(sum(s.audio.values()) for s in sims.values())} in "
        f"{run.counted_s:.1f} s, sent per voice {[sims[p].audio_out for p in VOICES]} "
        f"({sims[0].audio_out / run.counted_s:.1f} frames/s of {1 / AUDIO_PERIOD:.0f}), "
        f"least share of a speaker received {_least_share(sims):.3f}"
    )


def _note_victim(run: Run) -> None:
    """The victim's frames sent so far, and played so far by each participant."""
    victim = run.sims[VICTIM]
    run.victim_sent.append(victim.packetizer.frames_sent)
    run.victim_played.append(
        {pid: sim.played[(VICTIM, victim.sender)] for pid, sim in run.sims.items()}
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
    sims = run.sims
    forger = sims[FORGER].sender
    claimed = (VICTIM, int(MediaKind.AUDIO), 0)
    sent = run.victim_sent[1] - run.victim_sent[0]  # the victim's frames while forged
    assert sent > 0, run.victim_sent
    for pid, sim in sims.items():
        streams = [(r.stream, str(r.reason)) for r in sim.checks.reports]
        assert streams == [], (pid, streams)  # no stream condemned, the victim's least
        if pid in (FORGER, VICTIM, REMOVED):
            assert sim.checks.forgeries == [], (pid, sim.checks.forgeries)
            continue
        forgery = Forgery(forger, claimed, FORGER, Failure.FORGED_FRAME)
        assert sim.checks.forgeries == [forgery], (pid, sim.checks.forgeries)
        assert sim.played[(VICTIM, forger)] == 0, (pid, sim.played)  # never played
        assert sim.refused[(VICTIM, forger)] > 0, (pid, sim.refused)
        played = run.victim_played[1][pid] - run.victim_played[0][pid]
        assert played >= RECEIVED_AT_LEAST * sent, (pid, played, sent)  # still opening
