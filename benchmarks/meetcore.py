"""The forwarding core of a meeting alone (``node.sfu.Sfu.on_datagram``), at the size of
``benchmarks.meetings``' meeting: no socket, no trio, no node process.

A room of :data:`PARTICIPANTS` audio-only participants, four of them speaking at RFC 6464
levels 5, 15, 25 and 35 (so all four are selected: the dominant speaker and the 3 loudest),
ticked past the first speaker recompute so every fan-out is built. The datagrams replayed
are the meeting round's mix for :data:`MIX_MS` of media: each speaker's Opus frame every
20 ms with the voice-activity bit, and each silent participant's one silent frame
(discontinuous transmission, :data:`SILENT_EVERY` frames) without it: real
``wire.media`` headers and a payload of a fixture frame's size. Each ``on_datagram`` call
is one *decision*; a speaker's datagram fans out to every other participant (one
*copy* each, what ``sealrelay_meeting_forwarded_datagrams_total`` counts), a silent one to
nobody.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from benchmarks.harness import Result, measure
from node.sfu import Sfu
from wire.media import SILENCE, MediaHeader, MediaKind, StreamId, encode_datagram

PARTICIPANTS: Final = 200
SPEAKER_LEVELS: Final = (5, 15, 25, 35)
FRAME_MS: Final = 20
SILENT_EVERY: Final = 20
"""A silent participant sends one frame in this many (Opus DTX sends about one in 20)."""
MIX_MS: Final = FRAME_MS * SILENT_EVERY
PAYLOAD_BYTES: Final = 120
"""An Opus frame of the fixture with its SFrame header and tag, about."""
SENDER_BASE: Final = 0x1000_0000
CPU_SECONDS: Final = 1.0
QUICK_CPU_SECONDS: Final = 0.05
WARM_UP_MS: Final = 1000


def audio_datagram(sender: int, frame: int, level: int | None) -> bytes:
    """One Opus frame's datagram of ``sender``: voice at ``level``, or silence (None)."""
    header = MediaHeader(
        StreamId(sender, MediaKind.AUDIO),
        group=frame // 65_535,
        object=1 + frame % 65_535,
        frame=frame,
        packet=0,
        packets=1,
        audio_level=SILENCE if level is None else level,
        voice=level is not None,
    )
    return encode_datagram(header, bytes(PAYLOAD_BYTES))


@dataclass(frozen=True)
class Room:
    """A ticked core and the datagrams of one :data:`MIX_MS` of its media, with the
    connection each came on."""

    sfu: Sfu
    mix: tuple[tuple[int, bytes], ...]


def room(participants: int = PARTICIPANTS) -> Room:
    """The room of the module docstring, speakers first."""
    sfu = Sfu(0)
    levels: list[int | None] = [*SPEAKER_LEVELS, *[None] * (participants - len(SPEAKER_LEVELS))]
    for conn in range(participants):
        sfu.join(conn, SENDER_BASE + conn, ())
    mix: list[tuple[int, bytes]] = []
    for frame in range(SILENT_EVERY):
        for conn, level in enumerate(levels):
            if level is not None or frame == conn % SILENT_EVERY:
                mix.append((conn, audio_datagram(SENDER_BASE + conn, frame, level)))
    now = 0
    while now <= WARM_UP_MS:  # the speakers are measured and selected
        for conn, data in mix:
            sfu.on_datagram(conn, data)
        now += MIX_MS
        sfu.tick(now)
    return Room(sfu, tuple(mix))


def copies_per_pass(r: Room) -> int:
    """Copies forwarded for one pass over ``r.mix``."""
    return sum(len(r.sfu.on_datagram(conn, data)) for conn, data in r.mix)


def run_core(quick: bool) -> Result:
    """The micro-benchmark row: ``mean µs`` per decision, ``ops/s`` decisions per
    CPU-second; ``copies_per_cpu_s`` the copies forwarded per CPU-second."""
    r = room()
    on_datagram = r.sfu.on_datagram
    mix = r.mix

    def one_pass() -> None:
        for conn, data in mix:
            on_datagram(conn, data)

    timed = measure("pass", one_pass, quick=quick)
    copies = copies_per_pass(r)
    passes, cpu = 0, 0.0
    start = time.process_time()
    while cpu < (QUICK_CPU_SECONDS if quick else CPU_SECONDS):
        one_pass()
        passes += 1
        cpu = time.process_time() - start
    return core_row(len(mix), copies, passes, cpu, timed)


def core_row(decisions: int, copies: int, passes: int, cpu_s: float, timed: Result) -> Result:
    """The row from one pass's ``decisions`` and ``copies``, ``passes`` passes in ``cpu_s``
    CPU seconds, and the wall-clock timing ``timed`` of single passes."""
    per_cpu = decisions * passes / max(cpu_s, 1e-9)
    return Result(
        group="meetings",
        name=f"forwarding core, {PARTICIPANTS} participants, 4 speakers",
        ops_per_s=per_cpu,
        mean_us=1e6 / per_cpu,
        p50_us=None if timed.p50_us is None else timed.p50_us / decisions,
        p99_us=None if timed.p99_us is None else timed.p99_us / decisions,
        calls=decisions * passes,
        samples=timed.samples,
        batch=decisions,
        extra={
            "copies_per_cpu_s": round(copies * passes / max(cpu_s, 1e-9)),
            "copies_per_decision": round(copies / decisions, 2),
            "decisions_per_pass": decisions,
            "cpu_s": round(cpu_s, 3),
        },
    )
