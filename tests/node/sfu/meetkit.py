"""Simulated meeting participants for the SFU shell's tests and the node's integration
test: each replays the media fixture's Opus frames (``client.calls.fixture``) through the
packetizer at its own audio level, over a media connection bound to its meeting leg, and
counts what reaches it by sender id. The node never holds a key, so the frames are sealed
under a test secret; what the tests check is which streams arrive, byte for byte."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import trio

from client.calls.fixture import load_fixture
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from transport import MediaTransport, TransportError
from wire.media import SILENCE, MediaKind

FIXTURE: Final = load_fixture()
SECRET: Final = CallSecret(bytes(range(32)))
FRAME_SECONDS: Final = 0.02  # an Opus frame


def sender_of(data: bytes) -> int:
    """The sender id of a media datagram (``wire.media`` bytes 3-6)."""
    return int.from_bytes(data[3:7], "big")


@dataclass(eq=False)
class Participant:
    """One simulated participant: ``level`` is the RFC 6464 level it speaks at (None:
    silent, its audio goes without the voice-activity bit)."""

    media: MediaTransport
    sender: int
    level: int | None = None
    heard: Counter[int] = field(default_factory=Counter)
    received: list[bytes] = field(default_factory=list)
    controls: list[bytes] = field(default_factory=list)
    frames: int = 0

    def __post_init__(self) -> None:
        crypto = MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0)
        self.packetizer = Packetizer(crypto, self.sender)

    def audio(self, now: float) -> list[bytes]:
        """The datagrams of its next Opus frame of the fixture."""
        frame = FIXTURE.frame_at(MediaKind.AUDIO, self.frames)
        self.frames += 1
        voice = self.level is not None
        level = self.level if self.level is not None else SILENCE
        out = OutgoingFrame(MediaKind.AUDIO, frame.data, frame.keyframe, level, voice)
        return self.packetizer.packetize(out, now=now)

    def reset(self) -> None:
        self.heard.clear()
        self.received.clear()

    async def listen(self) -> None:
        """Count the datagrams that reach it, until its connection closes."""
        while True:
            try:
                batch = await self.media.receive_datagram_batch()
            except TransportError:
                return
            for data in batch:
                self.heard[sender_of(data)] += 1
            self.received += batch

    async def read_control(self) -> None:
        """Keep the node's control messages (notices), until the connection closes."""
        while True:
            try:
                self.controls.append(await self.media.receive_control())
            except TransportError:
                return


async def talk(people: list[Participant], rounds: int, sent: set[bytes], start: float) -> float:
    """Each of ``people`` sends ``rounds`` Opus frames, one round every 20 ms of real time;
    every datagram sent goes into ``sent``. The send time after the last round."""
    now = start
    for _ in range(rounds):
        for p in people:
            datagrams = p.audio(now)
            sent.update(datagrams)
            await p.media.send_datagrams(datagrams)
        now += FRAME_SECONDS
        await trio.sleep(FRAME_SECONDS)
    return now


async def measure(people: list[Participant], warm_up: int, rounds: int, sent: set[bytes]) -> float:
    """``warm_up`` rounds of :func:`talk` (the speakers settle), then ``rounds`` more after
    each participant's counts are reset, so ``heard`` holds only those; half a second
    after each for the last datagrams. The send time after the last round."""
    now = await talk(people, warm_up, sent, 0.0)
    await trio.sleep(0.5)
    for p in people:
        p.reset()
    now = await talk(people, rounds, sent, now + 1)
    await trio.sleep(0.5)
    return now
