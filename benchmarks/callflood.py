"""The ``flood`` command of ``benchmarks.callload``: legs bound as for a call, then both
ends send the fixture's datagrams as fast as the other end takes them (the node's
forwarding capacity, not a call's load)."""

from __future__ import annotations

import os
import time
from typing import Any, Final

import trio

from benchmarks.callkit import STEP_TIMEOUT, Barrier, Pair
from client.calls.fixture import load_fixture
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from transport.base import MediaTransport
from wire.calls import LegRef

FLOOD_BURST: Final = 10
"""Datagrams per ``send_datagrams`` call of a ``flood`` (about one video frame's worth)."""
FLOOD_WINDOW: Final = 64
"""Datagrams one direction of a flood keeps in flight."""
FLOOD_WAIT: Final = 0.05
"""Seconds a flood sender waits for a datagram in flight before writing it off as lost."""
FLOOD_DRAIN: Final = 0.5
"""Seconds a ``flood`` keeps receiving after its senders stopped."""


class Window:
    """Flow control of one direction of a flood: at most :data:`FLOOD_WINDOW` datagrams in
    flight; those not back within :data:`FLOOD_WAIT` seconds are written off as lost."""

    def __init__(self) -> None:
        self.sent = self.received = self.written_off = 0
        self._progress = trio.Event()

    def arrived(self, count: int) -> None:
        self.received += count
        self._progress.set()
        self._progress = trio.Event()

    async def room(self) -> None:
        while self.sent - self.received - self.written_off >= FLOOD_WINDOW:
            with trio.move_on_after(FLOOD_WAIT) as waited:
                await self._progress.wait()
            if waited.cancelled_caught:
                self.written_off = self.sent - self.received


async def flood(pairs: list[Pair], seconds: float) -> dict[str, Any]:
    """The first ``len(pairs)`` pairs bind legs as for ``media``; then both ends of each
    send the fixture's datagrams (packetized and encrypted once, before the clock starts)
    in bursts of :data:`FLOOD_BURST`, as fast as the peer receives them (:class:`Window`),
    for ``seconds``, and count what arrives."""
    windows: list[Window] = []
    barrier = Barrier(len(pairs))

    async def send(
        media: MediaTransport, datagrams: list[bytes], until: float, window: Window
    ) -> None:
        at = 0
        while time.monotonic() < until:
            await window.room()
            burst = datagrams[at : at + FLOOD_BURST]
            at = (at + FLOOD_BURST) % (len(datagrams) - FLOOD_BURST)
            await media.send_datagrams(burst)
            window.sent += len(burst)

    async def receive(media: MediaTransport, window: Window) -> None:
        while True:
            window.arrived(len(await media.receive_datagram_batch()))

    async def one(pair: Pair) -> None:
        granted = await pair.callee.leg_allocate()
        bridged = await pair.caller.leg_bridge(LegRef(pair.callee.domain, granted.leg_id))
        callee, callee_sender = await pair.callee.media_quic(granted)
        caller, caller_sender = await pair.caller.media_quic(bridged)
        secret = CallSecret(os.urandom(32))
        out = _datagrams(secret, Direction.CALLER_TO_CALLEE, caller_sender)
        back_datagrams = _datagrams(secret, Direction.CALLEE_TO_CALLER, callee_sender)
        await barrier.arrive()
        until = time.monotonic() + seconds
        forth, back = Window(), Window()
        windows.extend((forth, back))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, callee, forth)
            nursery.start_soon(receive, caller, back)
            async with trio.open_nursery() as senders:
                senders.start_soon(send, caller, out, until, forth)
                senders.start_soon(send, callee, back_datagrams, until, back)
            await trio.sleep(FLOOD_DRAIN)
            nursery.cancel_scope.cancel()
        await pair.caller.leg_hang_up(bridged.leg_id)
        await caller.aclose()
        await callee.aclose()

    with trio.fail_after(seconds + STEP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for pair in pairs:
                nursery.start_soon(one, pair)
    return {
        "sent": sum(w.sent for w in windows),
        "received": sum(w.received for w in windows),
        "cpu_s": time.process_time() - barrier.cpu_s,
    }


def _datagrams(secret: CallSecret, direction: Direction, sender: int) -> list[bytes]:
    """One loop of the fixture (audio and video), packetized and encrypted as ``sender``."""
    now = time.time()
    packetizer = Packetizer(MediaCrypto(secret, direction, now=now), sender)
    fixture = load_fixture()
    return [
        datagram
        for frame in fixture.frames
        for datagram in packetizer.packetize(OutgoingFrame.from_fixture(frame), now=now)
    ]
