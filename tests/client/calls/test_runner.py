"""The media runner over real loopback UDP QUIC: both sides of a call at once.

The caller runs on the client's channel of ``connect_quic`` (pinned server key), the callee on
the channel the ``QuicServer`` accepted; both are ``MediaTransport``s. Every frame that
arrives must decrypt and match its fixture digest; a transport that flips a byte in some
datagrams must produce counted decrypt failures while the call goes on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable

import trio

from client.calls.fixture import load_fixture
from client.calls.keys import CallSecret, Direction
from client.calls.receiver import ReceivedFrame
from client.calls.runner import MediaPlan, MediaRun, MediaRunner, run_media
from tests.transport.quicpair import loopback_server
from transport.base import DATAGRAM_BATCH, MediaTransport, TransportKind, TransportStats
from wire.media import MediaKind

SECONDS = 3.0
DELAY = 0.2  # jitter buffer: generous, 2 shared cores and several sessions at once
TIME_LIMIT = 8.0
TAMPER_EVERY = 25  # the caller's transport flips one payload byte of every 25th datagram
HANG_UP_AFTER = 1.0  # seconds into a call planned much longer
REKEY = 0.25  # seconds per SFrame epoch in that call
SUMMARY_KEYS = {
    "frames_sent",
    "frames_received",
    "frames_lost",
    "frames_late",
    "decrypt_failures",
    "latency_ms_p50",
    "latency_ms_p99",
    "jitter_ms",
    "transport",
    "seconds",
}
FIXTURE = load_fixture()


class Tampering:
    """A ``MediaTransport`` that flips the last byte (SFrame tag) of every n-th datagram."""

    def __init__(self, inner: MediaTransport, every: int) -> None:
        self._inner, self._every = inner, every
        self.seen = 0
        self.tampered = 0

    def _maybe_flip(self, payload: bytes) -> bytes:
        self.seen += 1
        if self.seen % self._every:
            return payload
        self.tampered += 1
        return payload[:-1] + bytes([payload[-1] ^ 0x01])

    @property
    def kind(self) -> TransportKind:
        return self._inner.kind

    async def send_datagram(self, payload: bytes) -> None:
        await self._inner.send_datagram(self._maybe_flip(payload))

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        await self._inner.send_datagrams([self._maybe_flip(p) for p in payloads])

    async def receive_datagram(self) -> bytes:
        return await self._inner.receive_datagram()

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        return await self._inner.receive_datagram_batch(limit)

    def datagrams(self) -> AsyncIterator[bytes]:
        return self._inner.datagrams()

    async def send_control(self, message: bytes) -> None:
        await self._inner.send_control(message)

    async def receive_control(self) -> bytes:
        return await self._inner.receive_control()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def stats(self) -> TransportStats:
        return self._inner.stats()


class Frames:
    """A play-out sink that checks each released frame against the fixture itself."""

    def __init__(self) -> None:
        self.count = 0
        self.mismatches = 0
        self.kinds: set[MediaKind] = set()
        self.last: dict[MediaKind, int] = {}
        self.senders: set[int] = set()

    def __call__(self, frame: ReceivedFrame) -> None:
        expected = FIXTURE.frame_at(frame.stream.kind, frame.header.frame).sha256
        self.count += 1
        self.mismatches += hashlib.sha256(frame.data).digest() != expected
        self.kinds.add(frame.stream.kind)
        self.senders.add(frame.stream.sender)
        self.last[frame.stream.kind] = max(self.last.get(frame.stream.kind, 0), frame.header.frame)


def _as_is(transport: MediaTransport) -> MediaTransport:
    return transport


async def _call(
    secret: CallSecret, wrap_caller: Callable[[MediaTransport], MediaTransport] = _as_is
) -> tuple[MediaRun, MediaRun, Frames, Frames]:
    """A video call of ``SECONDS`` between a QUIC client (caller) and the server (callee)."""
    sinks = (Frames(), Frames())
    runs: dict[Direction, MediaRun] = {}
    senders = {d: int.from_bytes(os.urandom(4), "big") for d in Direction}  # as a node draws

    async def side(transport: MediaTransport, direction: Direction, sink: Frames) -> None:
        runs[direction] = await run_media(
            transport,
            secret,
            direction,
            video=True,
            seconds=SECONDS,
            delay=DELAY,
            sender=senders[direction],
            on_frame=sink,
        )

    async with loopback_server() as loop:
        client, server = await loop.connect()
        caller = wrap_caller(client)
        with trio.fail_after(TIME_LIMIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, caller, Direction.CALLER_TO_CALLEE, sinks[0])
                nursery.start_soon(side, server, Direction.CALLEE_TO_CALLER, sinks[1])
        await client.aclose()
    assert sinks[0].senders == {senders[Direction.CALLEE_TO_CALLER]}
    assert sinks[1].senders == {senders[Direction.CALLER_TO_CALLEE]}
    return runs[Direction.CALLER_TO_CALLEE], runs[Direction.CALLEE_TO_CALLER], *sinks


def _expected_frames(seconds: float) -> int:
    """Frames a video sender sends in ``seconds`` (audio every 20 ms, VP8 at 30 fps)."""
    return round(seconds * (50 + 30))


async def test_video_call_over_loopback_quic_decrypts_every_frame() -> None:
    caller, callee, caller_sink, callee_sink = await _call(CallSecret(os.urandom(32)))
    for me, peer, sink in ((caller, callee, caller_sink), (callee, caller, callee_sink)):
        summary = me.summary()
        assert summary.keys() >= SUMMARY_KEYS
        assert summary["transport"] == "quic"
        assert SECONDS <= me.seconds < TIME_LIMIT
        assert not me.closed
        s = me.stats
        assert abs(s.frames_sent - _expected_frames(SECONDS)) <= 3
        assert s.decrypt_failures == 0
        assert s.digest_mismatches == 0
        assert s.replays == 0
        assert s.malformed == 0
        assert s.frames_received + s.frames_late >= 0.95 * peer.stats.frames_sent
        assert s.frames_received >= 0.8 * peer.stats.frames_sent
        assert s.frames_lost <= 0.02 * peer.stats.frames_sent
        assert s.latency_ms_p50 is not None
        assert s.latency_ms_p99 is not None
        assert 0 <= s.latency_ms_p50 <= s.latency_ms_p99 < 1000 * TIME_LIMIT
        assert s.jitter_ms >= 0
        assert me.frames_played == s.frames_received == sink.count
        assert sink.mismatches == 0
        assert sink.kinds == {MediaKind.AUDIO, MediaKind.VIDEO}


async def test_tampered_datagrams_are_counted_and_the_call_goes_on() -> None:
    tampering: list[Tampering] = []

    def wrap(transport: MediaTransport) -> MediaTransport:
        tampering.append(Tampering(transport, TAMPER_EVERY))
        return tampering[0]

    caller, callee, _, callee_sink = await _call(CallSecret(os.urandom(32)), wrap)
    [tamper] = tampering
    assert tamper.tampered >= 10
    s = callee.stats
    # one flipped datagram spoils its whole frame: at most one failure per tampered datagram
    assert 1 <= s.decrypt_failures <= tamper.tampered
    assert s.decrypt_failures >= 0.8 * tamper.tampered
    assert s.digest_mismatches == 0
    assert callee_sink.mismatches == 0
    # the call went on: frames kept arriving after the tampering started, to the end
    assert callee_sink.last[MediaKind.AUDIO] >= SECONDS * 50 - 10
    assert s.frames_received >= 0.7 * caller.stats.frames_sent
    assert callee_sink.count == s.frames_received
    assert caller.stats.decrypt_failures == 0  # the other direction was not touched
    assert caller.stats.digest_mismatches == 0


async def test_a_transport_that_closes_ends_both_sides_early() -> None:
    """Also: rekeying during the call, and a monotonic clock shared by both sides."""
    secret = CallSecret(os.urandom(32))
    runs: dict[Direction, MediaRun] = {}

    async def side(transport: MediaTransport, direction: Direction) -> None:
        plan = MediaPlan(video=False, seconds=TIME_LIMIT, rekey_interval=REKEY)
        runner = MediaRunner(transport, secret, direction, plan, clock=time.monotonic)
        runs[direction] = await runner.run()

    async def hang_up(transport: MediaTransport) -> None:
        await trio.sleep(HANG_UP_AFTER)
        await transport.aclose()

    async with loopback_server() as loop:
        client, server = await loop.connect()
        with trio.fail_after(TIME_LIMIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, client, Direction.CALLER_TO_CALLEE)
                nursery.start_soon(side, server, Direction.CALLEE_TO_CALLER)
                nursery.start_soon(hang_up, server)
        await client.aclose()
    for run in runs.values():
        assert run.closed
        assert HANG_UP_AFTER - 0.1 <= run.seconds < HANG_UP_AFTER + 2  # not the 8 s planned
        assert run.stats.frames_received > 0
        assert run.stats.decrypt_failures == 0
        assert run.stats.digest_mismatches == 0
        assert run.epoch >= HANG_UP_AFTER / REKEY - 1
        assert run.stats.latency_ms_p50 is not None
        assert run.stats.latency_ms_p50 < 1000 * HANG_UP_AFTER
