"""Receiver side: datagrams in, authenticated frames out at their playout time, and stats.

For each datagram (pure; ``now`` in seconds of a clock shared with the sender's timestamps):

1. :func:`wire.media.decode_datagram`; a malformed one is dropped (``malformed``), as is a
   signature datagram (a meeting reads those before this);
2. a packet of a frame already delivered is dropped as a replay (:class:`FrameWindow`; as
   in SRTP, RFC 3711 section 3.3.2, a packet too old for the window counts as one too);
3. :class:`~client.calls.reassembly.Reassembler` collects the frame's packets;
4. the whole frame is SFrame-decrypted (RFC 9605) with its position as metadata; a frame
   that does not authenticate is dropped (``decrypt_failures``), one that repeats an SFrame
   counter is dropped (``replays``, RFC 9605 section 9.3);
5. the frame is checked against the sender's digest, when a :class:`FrameCheck` is given
   (``digest_mismatches``);
6. the jitter buffer: a frame plays at ``send time + minimum transit + delay``, the minimum
   transit being the smallest seen so far (it absorbs the clock offset and the path's base
   delay). A frame that completes after that deadline is dropped as late (``frames_late``);
   the others wait in a heap until :meth:`Receiver.due` releases them in playout order.

Loss is counted from gaps in each stream's frame index (see :mod:`client.calls.stats`).
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from typing import Final, Protocol

from client.calls.fixture import Fixture
from client.calls.keys import FrameCrypto
from client.calls.packetizer import MAX_PACKETS, SEND_TIME
from client.calls.reassembly import FrameWindow, Outcome, Reassembler, Seen, WholeFrame
from client.calls.stats import (
    CallStats,
    JitterEstimator,
    LatencySamples,
    ReceiveCounters,
)
from suites.errors import DecryptionFailed
from suites.sframe import ReplayError, SFrameError
from wire.errors import WireError
from wire.media import MediaHeader, StreamId, decode_datagram

DEFAULT_DELAY: Final = 0.1
"""Seconds of jitter buffer delay beyond the minimum transit."""
_US: Final = 1_000_000
_MS: Final = 1000.0


class FrameCheck(Protocol):
    """Checks a decrypted frame against what the sender says it sent."""

    def matches(self, stream: StreamId, frame: int, data: bytes) -> bool:
        """True if ``data`` is what the sender sent as ``frame`` of ``stream``."""
        ...


@dataclass(frozen=True)
class FixtureCheck:
    """The sender loops ``fixture``: frame ``n`` of a kind is the clip's frame ``n`` mod count."""

    fixture: Fixture

    def matches(self, stream: StreamId, frame: int, data: bytes) -> bool:
        expected = self.fixture.frame_at(stream.kind, frame).sha256
        return hashlib.sha256(data).digest() == expected


@dataclass(frozen=True, order=True)
class ReceivedFrame:
    """A decrypted frame, ordered by its ``playout`` time."""

    playout: float
    stream: StreamId = field(compare=False)
    header: MediaHeader = field(compare=False)
    data: bytes = field(compare=False, repr=False)
    sent: float = field(compare=False)
    arrival: float = field(compare=False)


@dataclass
class _StreamStats:
    window: FrameWindow = field(default_factory=FrameWindow)
    jitter: JitterEstimator = field(default_factory=JitterEstimator)
    authenticated: int = 0


class Receiver:
    """One side's receive path for the peer's media streams."""

    def __init__(
        self,
        crypto: FrameCrypto,
        *,
        delay: float = DEFAULT_DELAY,
        check: FrameCheck | None = None,
        reassembly_timeout: float | None = None,
    ) -> None:
        if delay < 0:
            raise ValueError("jitter buffer delay must not be negative")
        self._crypto = crypto
        self._delay = delay
        self._check = check
        timeout = delay if reassembly_timeout is None else reassembly_timeout
        self._reassembler = Reassembler(timeout=timeout, max_packets=MAX_PACKETS)
        self._streams: dict[StreamId, _StreamStats] = {}
        self._min_transit: float | None = None
        self._buffer: list[ReceivedFrame] = []
        self._latency = LatencySamples()
        self.counters = ReceiveCounters()

    def receive(self, datagram: bytes, *, now: float) -> None:
        """Take one media datagram that arrived at ``now``."""
        try:
            header, payload = decode_datagram(datagram)
        except WireError:
            self.counters.malformed += 1
            return
        if header.is_signature:  # no frame: a meeting's signatures are read before this
            self.counters.malformed += 1
            return
        stream = self._streams.get(header.stream)
        if stream is not None and stream.window.check(header.frame) is not Seen.NEW:
            self.counters.replays += 1
            return
        outcome, whole = self._reassembler.add(header, payload, now)
        if outcome is Outcome.REPLAY:
            self.counters.replays += 1
        elif outcome is Outcome.MALFORMED:
            self.counters.malformed += 1
        elif whole is not None:
            self._frame(whole, now)

    def due(self, *, now: float) -> list[ReceivedFrame]:
        """The buffered frames whose playout time has come, in playout order."""
        self._reassembler.expire(now)
        out = []
        while self._buffer and self._buffer[0].playout <= now:
            out.append(heapq.heappop(self._buffer))
        return out

    def finish(self) -> list[ReceivedFrame]:
        """End of call: drop incomplete frames; the frames still buffered, in order."""
        self._reassembler.flush()
        out = sorted(self._buffer)
        self._buffer.clear()
        return out

    def stats(self, *, frames_sent: int = 0) -> CallStats:
        """The summary, with the local sender's ``frames_sent``."""
        c = self.counters
        expected = sum(s.window.highest + 1 for s in self._streams.values())
        authenticated = sum(s.authenticated for s in self._streams.values())
        p50, p99 = self._latency.percentiles(50, 99)
        jitter = max((s.jitter.jitter for s in self._streams.values()), default=0.0)
        return CallStats(
            frames_sent=frames_sent,
            frames_received=c.frames_received,
            frames_lost=expected - authenticated,
            frames_late=c.frames_late,
            decrypt_failures=c.decrypt_failures,
            latency_ms_p50=p50,
            latency_ms_p99=p99,
            jitter_ms=jitter * _MS,
            replays=c.replays,
            digest_mismatches=c.digest_mismatches,
            malformed=c.malformed,
            incomplete=self._reassembler.incomplete,
        )

    def _frame(self, whole: WholeFrame, now: float) -> None:
        plaintext = self._decrypt(whole, now)
        if plaintext is None:
            return
        header = whole.header
        stream = self._streams.setdefault(header.stream, _StreamStats())
        stream.window.mark(header.frame)
        stream.authenticated += 1
        sent = SEND_TIME.unpack_from(plaintext)[0] / _US
        data = plaintext[SEND_TIME.size :]
        stream.jitter.update(sent, now)
        self._latency.add(now - sent)
        if self._check is not None and not self._check.matches(header.stream, header.frame, data):
            self.counters.digest_mismatches += 1
            return
        playout = self._playout(sent, now)
        if now > playout:
            self.counters.frames_late += 1
            return
        self.counters.frames_received += 1
        frame = ReceivedFrame(playout, header.stream, header, data, sent, now)
        heapq.heappush(self._buffer, frame)

    def _decrypt(self, whole: WholeFrame, now: float) -> bytes | None:
        try:
            plaintext = self._crypto.unprotect(whole.ciphertext, whole.metadata, now=now)
        except ReplayError:
            self.counters.replays += 1
            return None
        except (DecryptionFailed, SFrameError):
            self.counters.decrypt_failures += 1
            return None
        if len(plaintext) <= SEND_TIME.size:
            self.counters.malformed += 1
            return None
        return plaintext

    def _playout(self, sent: float, now: float) -> float:
        """The playout deadline: send time + minimum transit so far + delay."""
        transit = now - sent
        if self._min_transit is None or transit < self._min_transit:
            self._min_transit = transit
        return sent + self._min_transit + self._delay
