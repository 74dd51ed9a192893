"""Load generator of ``benchmarks.meetings``: one process, many raw meeting participants
(as ``tests/node/sfu/meetkit.py``: no client meeting code, the protocol by hand).

    python -m benchmarks.meetload SPEC.json

``SPEC.json``: ``{"suite", "account": {"address", "url", "code"}, "room": HEX,
"meeting": HEX, "bus": {"dir", "index", "owners": [[first, count, address], ...]},
"participants": N, "speakers": [level, ...], "first": I}``: this process enrolls the one
account, and its ``N`` participants are ``MeetingJoin`` legs of that account in room
``ROOM`` (audio only; a cascade, ``benchmarks.meetlink``, adds ``"anchor": DOMAIN``,
``"video": I``, ``"watchers": W``: ``MeetingJoinAt`` that domain's room, participant ``I``
sends video and the last ``W`` here watch one video, ``benchmarks.meetlinkload``), each
bound to its own QUIC connection (``MediaBind``); the first
``len(speakers)`` speak at those RFC 6464 levels, the rest are silent. ``first`` is the
global index of its first participant (the speakers' probe stamps name it; it is also
each participant's pid in the meeting key schedule, ``benchmarks.meetkeys``, whose key
messages go between load processes over the Unix sockets of ``bus``). It prints
``{"ready": N}`` and answers each command line with one JSON line:

``join``
    every participant joins and binds (at most :data:`JOIN_CONCURRENCY` at once); each
    speaker starts talking as soon as it is bound and every participant listens. Answered
    once every participant has heard every speaker of ``SPEAKERS`` other than itself
    (``SPEAKERS``: the meeting's speaker count, the command's argument), with
    ``first_join`` (``time.monotonic()`` just before the first ``MeetingJoin``),
    ``last_bound`` and ``last_hearing`` (when the last participant heard its last speaker).
``measure T0 SECONDS``
    counts, for the window ``[T0, T0 + SECONDS)`` of ``time.monotonic()`` (one clock for
    every process of the machine): the datagrams its speakers sent, and the datagrams its
    participants received that were sent in the window, with each one's latency (send to
    ``receive_datagram_batch``, both read here and in the sender's process from
    ``CLOCK_MONOTONIC``) as a histogram of :data:`BUCKET_US` buckets, and per speaker
    the bytes its participants received and the most one of them received (``from``:
    ``{speaker: [bytes, most]}``); and the same for its
    *baseline probe*: one more QUIC connection, on loopback from this process to itself
    with no node, carrying a speaker's stream during the window. Answered
    :data:`DRAIN` seconds after the window.
``keys``
    the meeting key schedule starts (the key leader's process sends epoch 0 to everyone);
    answered once every participant here sends under it. From then on frames are
    SFrame-encrypted.
``remove PID[,PID...] GAP``
    (the key leader's process) the leader removes those participants, ``GAP`` s apart;
    answered with when, who and the epoch it will make.
``settled EPOCH SPEAKERS GONE[,GONE...] WITHIN``
    answered when every participant here but ``GONE`` sends under ``EPOCH`` and has opened
    a frame under it from each of the first ``SPEAKERS`` pids (or after ``WITHIN`` s).
``keys_report``
    what the key schedule recorded (``benchmarks.meetkeys.Records``).
``leave``
    every participant sends ``MeetingLeave`` and closes.
``quit``

A datagram is a ``wire.media`` audio header (voice bit and level for a speaker; a silent
participant sends one silent frame in :data:`benchmarks.meetcore.SILENT_EVERY`, as Opus
discontinuous transmission does) and a payload of a fixture Opus frame's size whose first
17 bytes are the probe stamp (:data:`STAMP`: send time in ns, speaker index, sequence
number, sealed or not). Before ``keys`` the rest is an opaque filler (the node never reads
a payload); after it, the SFrame ciphertext of the participant's frame under its send epoch
with the stamp as metadata (``benchmarks.meetkeys``).
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from benchmarks.callkit import STEP_TIMEOUT, emit, loopback_quic
from benchmarks.meetcore import FRAME_MS, PAYLOAD_BYTES, SILENT_EVERY
from benchmarks.meetkeys import KeyBus, Keys, Owner
from benchmarks.meetlinkload import heard_from, join_at, send_video, video_datagram, watch
from client.app import Client
from client.enroll import enroll
from client.store.memory import MemoryStore
from transport import (
    MediaTransport,
    TransportError,
)
from wire.media import HEADER_SIZE, SILENCE, MediaHeader, MediaKind, StreamId
from wire.relay import LegGrant, MeetingJoin, MeetingLeave

STAMP: Final = struct.Struct(">QIIB")
"""Probe stamp at the start of a payload: send time (monotonic ns), speaker, sequence, and
whether an SFrame ciphertext follows (1) or an opaque filler (0)."""
SFRAME_OVERHEAD: Final = 27
"""An SFrame header (KID of an epoch > 0 and a pid: 8 bytes, CTR 2) and its 16-byte tag."""
BUCKET_US: Final = 10
"""Latency histogram resolution, microseconds."""
JOIN_CONCURRENCY: Final = 8
DRAIN: Final = 1.0
"""Seconds a ``measure`` keeps counting after its window (late datagrams still count)."""
BASELINE_SPEAKER: Final = 0xFFFF_FFFF
SETTLED_POLL: Final = 0.05
QUIC_SAMPLE: Final = 0.1
"""Seconds between two readings of the QUIC connections' congestion state."""
FRAME_S: Final = FRAME_MS / 1000
_FILLER: Final = bytes(PAYLOAD_BYTES - STAMP.size)
_PLAINTEXT: Final = bytes(PAYLOAD_BYTES - STAMP.size - SFRAME_OVERHEAD)
Seal = Callable[[bytes, bytes], "bytes | None"]
"""``seal(metadata, plaintext)``: the SFrame ciphertext, or None while there is no key."""


def datagram(
    sender: int, index: int, seq: int, level: int | None, seal: Seal | None = None
) -> bytes:
    """The ``seq``-th frame of participant ``index`` (sender id ``sender``), stamped now:
    SFrame-encrypted by ``seal`` (the stamp is its metadata) when it gives a ciphertext."""
    header = MediaHeader(
        StreamId(sender, MediaKind.AUDIO),
        group=seq // 65_535,
        object=1 + seq % 65_535,
        frame=seq,
        packet=0,
        packets=1,
        audio_level=SILENCE if level is None else level,
        voice=level is not None,
    )
    now = time.monotonic_ns()
    if seal is not None:
        stamp = STAMP.pack(now, index, seq, 1)
        sealed = seal(stamp, _PLAINTEXT)
        if sealed is not None:
            return header.encode() + stamp + sealed
    return header.encode() + STAMP.pack(now, index, seq, 0) + _FILLER


@dataclass
class Window:
    """What one ``measure`` counts (module docstring); times in monotonic ns."""

    start: int
    end: int
    sent: Counter[int] = field(default_factory=Counter)
    received: int = 0
    histogram: Counter[int] = field(default_factory=Counter)
    base_sent: int = 0
    base_received: int = 0
    base_histogram: Counter[int] = field(default_factory=Counter)
    quic_samples: int = 0
    quic_cwnd_full: int = 0
    quic_rtt_ms: Counter[int] = field(default_factory=Counter)
    heard_bytes: Counter[tuple[int, int]] = field(default_factory=Counter)
    """Bytes received per (participant, speaker)."""

    def document(self) -> dict[str, Any]:
        return {
            "quic_samples": self.quic_samples,
            "quic_cwnd_full": self.quic_cwnd_full,
            "quic_rtt_ms": {str(k): v for k, v in self.quic_rtt_ms.items()},
            "sent": {str(k): v for k, v in self.sent.items()},
            "received": self.received,
            "histogram": {str(k): v for k, v in self.histogram.items()},
            "base_sent": self.base_sent,
            "base_received": self.base_received,
            "base_histogram": {str(k): v for k, v in self.base_histogram.items()},
            "from": heard_from(self.heard_bytes),
        }


@dataclass(eq=False)
class Participant:
    index: int
    level: int | None
    grant: LegGrant | None = None
    media: MediaTransport | None = None
    sender: int = 0
    heard: set[int] = field(default_factory=set)
    hearing_at: float | None = None


class Meeting:
    """This process's participants (module docstring)."""

    def __init__(self, client: Client, spec: dict[str, Any]) -> None:
        self.client = client
        self.room = bytes.fromhex(spec["room"])
        self.anchor: str | None = spec.get("anchor")
        self.video: int | None = spec.get("video")
        self.watchers: int = spec.get("watchers", 0)
        levels: list[int | None] = list(spec["speakers"])
        levels += [None] * (spec["participants"] - len(levels))
        self.people = [Participant(spec["first"] + i, lv) for i, lv in enumerate(levels)]
        bus = spec["bus"]
        self.owners = [Owner(*owner) for owner in bus["owners"]]
        self.keys = Keys(
            bytes.fromhex(spec["meeting"]),
            [p.index for p in self.people],
            spec["suite"],
            KeyBus(Path(bus["dir"]), bus["index"], self.owners),
        )
        self.window: Window | None = None
        self.speakers_total = 0
        self._all_hear = trio.Event()
        self._nursery: trio.Nursery | None = None

    # --- join ----------------------------------------------------------------------------

    async def join(self, nursery: trio.Nursery, speakers: int) -> dict[str, Any]:
        self._nursery, self.speakers_total = nursery, speakers
        limit = trio.CapacityLimiter(JOIN_CONCURRENCY)
        first = time.monotonic()
        bound: list[float] = []

        async def one(p: Participant) -> None:
            async with limit:
                if self.anchor is None:
                    grant = await self.client.link.request(MeetingJoin(0, self.room, ()))
                else:
                    grant = await join_at(
                        self.client, self.room, self.anchor, p.index == self.video
                    )
                if not isinstance(grant, LegGrant):
                    raise RuntimeError(f"MeetingJoin answered {grant!r}")
                p.grant = grant
                p.media, p.sender = await self.client.media_quic(grant)
            bound.append(time.monotonic())
            nursery.start_soon(self._listen, p)
            nursery.start_soon(self._talk, p)
            if p.index == self.video:
                nursery.start_soon(send_video, p.media, partial(self._frame, p))

        with trio.fail_after(STEP_TIMEOUT):
            async with trio.open_nursery() as joins:
                for p in self.people:
                    joins.start_soon(one, p)
            self._check_hearing()
            await self._all_hear.wait()
            for p in self.people[len(self.people) - self.watchers :]:
                assert p.grant is not None
                await watch(self.client, p.grant.leg_id)
        hearing = [p.hearing_at for p in self.people if p.hearing_at is not None]
        return {"first_join": first, "last_bound": max(bound), "last_hearing": max(hearing)}

    def _frame(self, p: Participant, seq: int) -> bytes:
        return video_datagram(p.sender, seq, STAMP.pack(time.monotonic_ns(), p.index, seq, 0))

    def _expected(self, p: Participant) -> int:
        return self.speakers_total - (p.level is not None)

    def _check_hearing(self) -> None:
        if all(p.hearing_at is not None for p in self.people):
            self._all_hear.set()

    # --- media ---------------------------------------------------------------------------

    async def _talk(self, p: Participant) -> None:
        """Send a frame every 20 ms (a silent participant: one in ``SILENT_EVERY``)."""
        assert p.media is not None
        seq = 0
        next_at = trio.current_time()  # trio's clock: not time.monotonic's origin
        seal = partial(self.keys.seal, p.index)
        while True:
            if p.level is not None or seq % SILENT_EVERY == p.index % SILENT_EVERY:
                data = datagram(p.sender, p.index, seq, p.level, seal)
                try:
                    await p.media.send_datagrams([data])
                except TransportError:
                    return
                w = self.window
                if p.level is not None and w is not None:
                    at = STAMP.unpack_from(data, HEADER_SIZE)[0]
                    if w.start <= at < w.end:
                        w.sent[p.index] += 1
            seq += 1
            next_at += FRAME_S
            await trio.sleep_until(next_at)

    async def _listen(self, p: Participant) -> None:
        assert p.media is not None
        unpack = STAMP.unpack_from
        on_frame = self.keys.on_frame
        body = HEADER_SIZE + STAMP.size
        while True:
            try:
                batch = await p.media.receive_datagram_batch()
            except TransportError:
                return
            now = time.monotonic_ns()
            w = self.window
            for data in batch:
                at, speaker, _seq, sealed = unpack(data, HEADER_SIZE)
                if sealed:
                    on_frame(p.index, data[HEADER_SIZE:body], data[body:], at / 1e9)
                if p.hearing_at is None:
                    p.heard.add(speaker)
                    if len(p.heard) >= self._expected(p):
                        p.hearing_at = time.monotonic()
                        self._check_hearing()
                if w is not None and w.start <= at < w.end:
                    w.received += 1
                    w.heard_bytes[p.index, speaker] += len(data)
                    w.histogram[(now - at) // (BUCKET_US * 1000)] += 1

    # --- measure -------------------------------------------------------------------------

    async def measure(self, t0: float, seconds: float) -> dict[str, Any]:
        start = int(t0 * 1e9)
        window = self.window = Window(start, start + int(seconds * 1e9))
        cpu = 0.0
        async with trio.open_nursery() as nursery:
            await _baseline_ready(nursery, window, t0 + seconds)
            nursery.start_soon(self._sample_quic, window, t0 + seconds)
            await trio.sleep(max(0.0, t0 - time.monotonic()))
            cpu = time.process_time()
            await trio.sleep(max(0.0, t0 + seconds - time.monotonic()))
            cpu = time.process_time() - cpu
            await trio.sleep(DRAIN)
            nursery.cancel_scope.cancel()
        self.window = None
        return {**window.document(), "cpu_s": cpu}

    async def _sample_quic(self, window: Window, until: float) -> None:
        """Every :data:`QUIC_SAMPLE` s until ``until``: the speakers' connections to the
        node (every participant's if none speaks here), whether qh3's congestion window is
        full (a datagram sent now waits in this process for the node's acks) and the RTT."""
        people = [p for p in self.people if p.level is not None] or self.people
        while time.monotonic() < until:
            for p in people:
                core = getattr(getattr(p.media, "_conn", None), "_core", None)
                if core is None:
                    continue
                with contextlib.suppress(Exception):  # a diagnostic; a closing connection
                    window.quic_samples += 1
                    window.quic_cwnd_full += core.bytes_in_flight >= core.congestion_window
                    window.quic_rtt_ms[int((core.smoothed_rtt or 0.0) * 1000)] += 1
            await trio.sleep(QUIC_SAMPLE)

    # --- keys --------------------------------------------------------------------------------

    async def keyed(self) -> dict[str, Any]:
        """Epoch 0 for every participant (the leader's process starts it); answered once
        every participant here sends under it."""
        await self.keys.start(self.owners)
        with trio.fail_after(STEP_TIMEOUT):
            await self.keys.sending.wait()
        return {"keyed": len(self.people), "at": time.monotonic()}

    async def remove(self, pids: list[int], gap: float) -> dict[str, Any]:
        """The leader removes ``pids``, ``gap`` seconds apart (its process only)."""
        leader = self.keys.leader
        if leader is None:
            raise RuntimeError("the key leader is not in this process")
        epoch, first = leader.epoch + 1, time.monotonic()
        for i, pid in enumerate(pids):
            if i:
                await trio.sleep(gap)
            self.keys.remove(pid)
        return {"at": first, "last": time.monotonic(), "pids": pids, "epoch": epoch}

    async def settled(
        self, epoch: int, speakers: int, gone: set[int], within: float
    ) -> dict[str, Any]:
        """When every participant here (but ``gone``) sends under ``epoch`` and has opened
        a frame under it from each of the first ``speakers`` pids (None after ``within``)."""
        for _ in range(int(within / SETTLED_POLL)):
            if self.keys.settled(epoch, range(speakers), gone):
                return {"epoch": epoch, "at": time.monotonic()}
            await trio.sleep(SETTLED_POLL)
        return {"epoch": epoch, "at": None}

    async def leave(self) -> dict[str, Any]:
        for p in self.people:
            if p.grant is not None:
                await self.client.link.request(MeetingLeave(0, p.grant.leg_id))
            if p.media is not None:
                await p.media.aclose()
        return {"left": len(self.people)}


async def _baseline_ready(nursery: trio.Nursery, window: Window, until: float) -> None:
    """Start the baseline probe (module docstring): a loopback QUIC connection in this
    process, a speaker's stream over it until ``until``, timed as the meeting's."""
    out, back = await loopback_quic(nursery)

    async def send() -> None:
        seq, next_at = 0, trio.current_time()
        stop = next_at + until - time.monotonic()
        while next_at < stop:
            data = datagram(1, BASELINE_SPEAKER, seq, SPEAKER_BASELINE_LEVEL)
            await out.send_datagrams([data])
            if window.start <= STAMP.unpack_from(data, HEADER_SIZE)[0] < window.end:
                window.base_sent += 1
            seq += 1
            next_at += FRAME_S
            await trio.sleep_until(next_at)

    async def receive() -> None:
        while True:
            batch = await back.receive_datagram_batch()
            now = time.monotonic_ns()
            for data in batch:
                at = STAMP.unpack_from(data, HEADER_SIZE)[0]
                if window.start <= at < window.end:
                    window.base_received += 1
                    window.base_histogram[(now - at) // (BUCKET_US * 1000)] += 1

    nursery.start_soon(send)
    nursery.start_soon(receive)


SPEAKER_BASELINE_LEVEL: Final = 20


# --- the command loop -------------------------------------------------------------------------


async def _command(line: str, meeting: Meeting, nursery: trio.Nursery) -> dict[str, Any]:
    words = line.split()
    if words[0] == "join":
        return await meeting.join(nursery, int(words[1]))
    if words[0] == "measure":
        return await meeting.measure(float(words[1]), float(words[2]))
    if words[0] == "leave":
        return await meeting.leave()
    if words[0] == "keys":
        return await meeting.keyed()
    if words[0] == "remove":
        return await meeting.remove([int(w) for w in words[1].split(",")], float(words[2]))
    if words[0] == "settled":
        gone = {int(w) for w in words[3].split(",")}
        return await meeting.settled(int(words[1]), int(words[2]), gone, float(words[4]))
    if words[0] == "keys_report":
        return meeting.keys.records.document()
    raise ValueError(f"unknown command {line!r}")


async def _main(spec: dict[str, Any], home: Path) -> None:
    store = MemoryStore()
    account = spec["account"]
    await enroll(store, account["address"], account["url"], account["code"], spec["suite"])
    client = Client.load(store, save_dir=home)
    meeting = Meeting(client, spec)
    with meeting.keys.bus:
        await _serve(client, meeting)


async def _serve(client: Client, meeting: Meeting) -> None:
    stdin = trio.wrap_file(sys.stdin)
    async with client.online(), trio.open_nursery() as nursery:
        meeting.keys.bus.open()
        nursery.start_soon(meeting.keys.run, nursery)
        emit({"ready": len(meeting.people)})
        while (line := (await stdin.readline()).strip()) and line != "quit":
            try:
                emit(await _command(line, meeting, nursery))
            except Exception as exc:  # the orchestrator reports it and stops the run
                traceback.print_exc()
                emit({"error": f"{type(exc).__name__}: {exc}"})
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    path = Path(sys.argv[1])
    load_spec = json.loads(path.read_text(encoding="utf-8"))
    home = path.parent / f"{path.stem}-home"
    home.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(_main, load_spec, home)
