"""The media runner: the trio shell that plays one side of a call over a ``MediaTransport``.

It drives the pure media core (:mod:`client.calls.packetizer`, :mod:`client.calls.receiver`)
with the shipped fixture (:mod:`client.calls.fixture`) as the "camera and microphone"
(issue 17, DESIGN section 9). Three tasks share one :class:`MediaCrypto`:

send
    paces the fixture's frames by their timestamps (Opus every 20 ms, and VP8 about every
    33 ms when ``video`` is on; the 5 s clip loops), SFrame-encrypts and packetizes each
    when its time comes, and sends the datagrams of every frame that is due in one
    ``send_datagrams`` call. Frames that fell behind (a stalled scheduler) go out at once,
    stamped with the time they actually leave.
receive
    takes datagram batches (``receive_datagram_batch``) and feeds the receiver, which
    reassembles, decrypts, checks each frame against the fixture's digest and buffers it.
play-out
    releases frames from the jitter buffer as they come due (:meth:`Receiver.due`) every
    :data:`PLAYOUT_TICK` seconds, to an optional ``on_frame`` sink.

Time: every timestamp comes from one injectable ``clock`` (seconds). The packetizer puts
``clock()`` at send time inside the encrypted frame; the receiver takes ``clock()`` at arrival
minus that as the latency. Latency figures mean something only if both sides read clocks
with one epoch: the default :func:`time.time` is shared by every process of a machine (and
by NTP-synced machines); ``time.monotonic`` also works within one machine. Pacing converts
clock deadlines into relative trio sleeps, never into trio's own (offset) clock.

Keepalive: the node's call relay expires a bound leg after 30 s without datagrams. The
fixture always has audio (silent frames included), so a running sender sends a datagram at
least every 20 ms and never lets its leg expire. After its last frame a side only drains
for ``delay + drain`` seconds (well under a second) before it returns; a caller that keeps
the transport open longer without media must send something itself.

End: after ``seconds`` of media and the drain, or as soon as the transport closes
(``TransportClosed`` in either task; :attr:`MediaRun.closed`). The transport is left open:
whoever opened it closes it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio

from client.calls.fixture import Fixture, ScheduledFrame, load_fixture, play
from client.calls.keys import REKEY_INTERVAL, CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import DEFAULT_DELAY, FixtureCheck, ReceivedFrame, Receiver
from client.calls.stats import CallStats
from transport.base import DATAGRAM_BATCH, MediaTransport, TransportKind, TransportStats
from transport.errors import TransportClosed
from wire.media import MediaKind

Clock = Callable[[], float]
"""Seconds; shared with the peer's clock for latency to mean anything (module docstring)."""
FrameSink = Callable[[ReceivedFrame], object]

PLAYOUT_TICK: Final = 0.005
"""Seconds between jitter-buffer releases (a quarter of an audio frame)."""
DRAIN: Final = 0.3
"""Seconds, beyond the jitter buffer delay, a side keeps receiving after its last frame."""
_US: Final = 1_000_000


@dataclass(frozen=True)
class MediaRun:
    """What one side measured: the receive-side summary, and how the run went."""

    stats: CallStats
    seconds: float
    """Elapsed ``clock`` seconds from the start to the end of the run (drain included)."""
    transport: TransportKind
    transport_stats: TransportStats
    frames_played: int
    """Frames the jitter buffer released (plus those still buffered at the end)."""
    closed: bool
    """True if the transport closed before the planned end."""
    epoch: int
    """The SFrame epoch this side sent in last (one every ``rekey_interval`` seconds)."""

    def summary(self) -> dict[str, object]:
        """The CLI's summary object: the :class:`CallStats` keys, ``transport``, ``seconds``."""
        return {**self.stats.as_dict(), "transport": self.transport, "seconds": self.seconds}


@dataclass(frozen=True)
class MediaPlan:
    """What one side sends, and how it receives."""

    video: bool
    seconds: float
    delay: float = DEFAULT_DELAY
    drain: float = DRAIN
    sender: int | None = None
    """The sender id in the clear header: the one the node drew when this side's connection
    bound its leg (the node drops a datagram whose sender is not bound to the connection it
    came on). ``None``, with no node in between: the direction's value (0 or 1)."""
    rekey_interval: float = REKEY_INTERVAL

    @property
    def kinds(self) -> tuple[MediaKind, ...]:
        return (MediaKind.AUDIO, MediaKind.VIDEO) if self.video else (MediaKind.AUDIO,)


class MediaRunner:
    """One side of a call's media over ``transport`` (see the module docstring)."""

    def __init__(
        self,
        transport: MediaTransport,
        secret: CallSecret,
        direction: Direction,
        plan: MediaPlan,
        *,
        clock: Clock = time.time,
        fixture: Fixture | None = None,
        on_frame: FrameSink | None = None,
    ) -> None:
        if plan.seconds <= 0 or plan.drain < 0:
            raise ValueError("a call runs for a positive time and drains for a non-negative one")
        self._transport, self._plan, self._clock = transport, plan, clock
        self._fixture = load_fixture() if fixture is None else fixture
        self._on_frame = on_frame
        self._start = clock()
        self._crypto = MediaCrypto(
            secret, direction, now=self._start, rekey_interval=plan.rekey_interval
        )
        sender = int(direction) if plan.sender is None else plan.sender
        self._packetizer = Packetizer(self._crypto, sender)
        self._receiver = Receiver(self._crypto, delay=plan.delay, check=FixtureCheck(self._fixture))
        self._played = 0
        self._closed = False

    async def run(self) -> MediaRun:
        """Send, receive and play out until the end (once); the measurements."""
        self._start = self._clock()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._guarded, self._receive, nursery.cancel_scope)
            nursery.start_soon(self._play_out)
            await self._guarded(self._send, nursery.cancel_scope)
            nursery.cancel_scope.cancel()
        for frame in self._receiver.finish():
            self._deliver(frame)
        return MediaRun(
            stats=self._receiver.stats(frames_sent=self._packetizer.frames_sent),
            seconds=round(self._clock() - self._start, 3),
            transport=self._transport.kind,
            transport_stats=self._transport.stats(),
            frames_played=self._played,
            closed=self._closed,
            epoch=self._crypto.send_epoch,
        )

    async def _guarded(self, task: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        """Run ``task``; a closed transport ends the whole run, as its planned end does."""
        try:
            await task()
        except TransportClosed:
            self._closed = True
            scope.cancel()

    async def _send(self) -> None:
        pending: list[bytes] = []
        for item in play(self._fixture, self._plan.kinds, round(self._plan.seconds * _US)):
            wait = self._start + item.at_us / _US - self._clock()
            if wait > 0:
                await self._flush(pending)
                await trio.sleep(wait)
            pending += self._packetize(item)
        await self._flush(pending)
        await trio.sleep(self._plan.delay + self._plan.drain)

    def _packetize(self, item: ScheduledFrame) -> list[bytes]:
        frame = OutgoingFrame.from_fixture(item.frame)
        return self._packetizer.packetize(frame, now=self._clock())

    async def _flush(self, pending: list[bytes]) -> None:
        if pending:
            await self._transport.send_datagrams(pending)
            pending.clear()

    async def _receive(self) -> None:
        while True:
            batch = await self._transport.receive_datagram_batch(DATAGRAM_BATCH)
            now = self._clock()
            for datagram in batch:
                self._receiver.receive(datagram, now=now)

    async def _play_out(self) -> None:
        while True:
            for frame in self._receiver.due(now=self._clock()):
                self._deliver(frame)
            await trio.sleep(PLAYOUT_TICK)

    def _deliver(self, frame: ReceivedFrame) -> None:
        self._played += 1
        if self._on_frame is not None:
            self._on_frame(frame)


async def run_media(
    transport: MediaTransport,
    secret: CallSecret,
    direction: Direction,
    *,
    video: bool,
    seconds: float,
    clock: Clock = time.time,
    delay: float = DEFAULT_DELAY,
    sender: int | None = None,
    on_frame: FrameSink | None = None,
) -> MediaRun:
    """Play one side of a call for ``seconds`` over ``transport``; what it measured.

    ``direction`` is the way this side sends (the caller sends ``CALLER_TO_CALLEE``);
    ``sender`` is the id the node bound to this side's leg (see :class:`MediaPlan`).
    """
    plan = MediaPlan(video=video, seconds=seconds, delay=delay, sender=sender)
    runner = MediaRunner(transport, secret, direction, plan, clock=clock, on_frame=on_frame)
    return await runner.run()
