"""A simulated 60 s audio + video call through packetizer and receiver over a bad network.

The network model is seeded: it drops datagrams, delays each by a base plus random jitter
(which reorders them), delays a few far past the jitter buffer, duplicates some and tampers
with some audio frames. The test predicts every counter from the model alone (not from the
receiver's code) and checks the receiver's stats against it; every delivered frame must match
the fixture's digest, and keys rotate three times during the call.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from client.calls.fixture import load_fixture, play
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import FixtureCheck, Receiver
from wire.media import MediaKind, StreamId

SECONDS = 60
BASE = 0.020  # every datagram takes at least this long
JITTER = 0.030  # plus up to this much, uniformly
LATE_EXTRA = 0.300  # a few take this much longer: past the jitter buffer
DELAY = 0.100  # jitter buffer delay beyond the minimum transit
P_DROP, P_LATE, P_DUP = 0.01, 0.005, 0.005
TAMPER_EVERY = 97  # audio frames with index % 97 == 5 have a byte flipped
DUP_GAP = 0.005
REKEY = 20.0
FIXTURE = load_fixture()


@dataclass
class Frame:
    kind: MediaKind
    index: int
    sent: float
    packets: int
    tampered: bool
    arrivals: list[float] = field(default_factory=list)
    dropped: bool = False
    duplicates: int = 0


@dataclass(order=True)
class Arrival:
    at: float
    datagram: bytes = field(compare=False)


def _network(rng: random.Random, frame: Frame, datagrams: list[bytes]) -> list[Arrival]:
    out = []
    for n, d in enumerate(datagrams):
        first = frame.index == 0
        if not first and rng.random() < P_DROP:
            frame.dropped = True
            continue
        transit = BASE if first else BASE + rng.uniform(1e-6, JITTER)
        if not first and rng.random() < P_LATE:
            transit += LATE_EXTRA
        if frame.tampered and n == 0:
            d = d[:-1] + bytes([d[-1] ^ 0x40])
        at = frame.sent + transit
        frame.arrivals.append(at)
        out.append(Arrival(at, d))
        if not first and not frame.tampered and rng.random() < P_DUP:
            frame.duplicates += 1
            out.append(Arrival(at + DUP_GAP, d))
    return out


def _send_all(rng: random.Random) -> tuple[Packetizer, list[Frame], list[Arrival]]:
    secret = CallSecret(rng.randbytes(32))
    crypto = MediaCrypto(secret, Direction.CALLEE_TO_CALLER, now=0.0, rekey_interval=REKEY)
    sender = Packetizer(crypto, sender=3)
    frames, arrivals = [], []
    for s in play(FIXTURE, (MediaKind.AUDIO, MediaKind.VIDEO), SECONDS * 1_000_000):
        sent = s.at_us / 1e6
        datagrams = sender.packetize(OutgoingFrame.from_fixture(s.frame), now=sent)
        tampered = s.frame.kind is MediaKind.AUDIO and s.index % TAMPER_EVERY == 5
        frame = Frame(s.frame.kind, s.index, round(sent * 1e6) / 1e6, len(datagrams), tampered)
        frames.append(frame)
        arrivals += _network(rng, frame, datagrams)
    return sender, frames, sorted(arrivals)


def _nearest_rank(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def _expected(frames: list[Frame]) -> dict[str, float]:
    """Every counter, from the network model only."""
    whole = [f for f in frames if not f.dropped]
    good = [f for f in whole if not f.tampered]
    late = [f for f in good if max(f.arrivals) - f.sent > BASE + DELAY]
    highest = {k: max(f.index for f in good if f.kind is k) for k in MediaKind}
    jitter = {}
    for kind in MediaKind:
        j, last = 0.0, None
        for f in sorted((f for f in good if f.kind is kind), key=lambda f: max(f.arrivals)):
            transit = max(f.arrivals) - f.sent
            j += 0.0 if last is None else (abs(transit - last) - j) / 16
            last = transit
        jitter[kind] = j
    latencies = [(max(f.arrivals) - f.sent) * 1000 for f in good]
    return {
        "frames_sent": len(frames),
        "frames_received": len(good) - len(late),
        "frames_late": len(late),
        "frames_lost": sum(highest[k] + 1 for k in MediaKind) - len(good),
        "decrypt_failures": sum(f.tampered for f in whole),
        "replays": sum(f.duplicates for f in frames),
        "latency_ms_p50": _nearest_rank(latencies, 50),
        "latency_ms_p99": _nearest_rank(latencies, 99),
        "jitter_ms": max(jitter.values()) * 1000,
    }


@pytest.mark.slow
def test_sixty_second_call_over_a_lossy_reordering_network() -> None:
    rng = random.Random(20261205)
    sender, frames, arrivals = _send_all(rng)
    crypto = MediaCrypto(
        CallSecret(random.Random(20261205).randbytes(32)),
        Direction.CALLER_TO_CALLEE,
        now=0.0,
        rekey_interval=REKEY,
    )
    receiver = Receiver(crypto, delay=DELAY, check=FixtureCheck(FIXTURE), reassembly_timeout=1.0)
    played = []
    for a in arrivals:
        played += receiver.due(now=a.at)
        receiver.receive(a.datagram, now=a.at)
    played += receiver.finish()

    stats = receiver.stats(frames_sent=sender.frames_sent).as_dict()
    expected = _expected(frames)
    assert {k: stats[k] for k in expected} == pytest.approx(expected)
    assert stats["digest_mismatches"] == stats["malformed"] == 0
    assert crypto.recv_epoch == 2  # 60 s at one epoch per 20 s
    # the model really exercised every path
    assert min(expected[k] for k in ("frames_late", "frames_lost", "replays")) > 10
    assert expected["decrypt_failures"] > 10
    gaps = sum(f.dropped or f.tampered for f in frames)  # tampered frames leave gaps too
    assert gaps - 2 <= expected["frames_lost"] <= gaps  # minus any lost at a stream's end

    assert len(played) == stats["frames_received"]
    assert [f.playout for f in played] == sorted(f.playout for f in played)
    for f in played:
        assert f.data == FIXTURE.frame_at(f.stream.kind, f.header.frame).data
        assert f.stream == StreamId(3, f.stream.kind)
        assert f.arrival <= f.playout


def test_clean_network_gives_exact_numbers() -> None:
    secret = CallSecret(b"\x01" * 32)
    sender = Packetizer(MediaCrypto(secret, Direction.CALLER_TO_CALLEE, now=0.0), sender=1)
    receiver = Receiver(
        MediaCrypto(secret, Direction.CALLEE_TO_CALLER, now=0.0), check=FixtureCheck(FIXTURE)
    )
    for s in play(FIXTURE, (MediaKind.AUDIO, MediaKind.VIDEO), 6_000_000):
        t = s.at_us / 1e6
        for d in sender.packetize(OutgoingFrame.from_fixture(s.frame), now=t):
            receiver.receive(d, now=t + 0.030)
    stats = receiver.stats(frames_sent=sender.frames_sent)
    assert stats.frames_sent == stats.frames_received == 300 + 180
    assert (stats.frames_lost, stats.frames_late, stats.decrypt_failures) == (0, 0, 0)
    assert stats.latency_ms_p50 == pytest.approx(30.0)
    assert stats.latency_ms_p99 == pytest.approx(30.0)
    assert stats.jitter_ms == pytest.approx(0.0, abs=1e-6)
