"""Receiver side, step one: collect the datagrams of each frame until it is whole.

Pure and bounded: at most :data:`MAX_PENDING` frames wait at once (the oldest is dropped
beyond that), a frame may have at most :data:`client.calls.packetizer.MAX_PACKETS` packets,
and a frame not whole within the reassembly timeout of its first packet is dropped
(``incomplete``; its index stays a gap, so it counts as lost). A packet that disagrees with
the frame's first packet about the frame (group, object, keyframe, packet count) is
``malformed``; a packet seen twice is a replay.

:class:`FrameWindow` remembers which frame indices of a stream were already delivered, in
the manner of the RFC 3711 section 3.3.2 replay list, so repeated packets of a finished frame
are dropped before any decryption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from wire.media import MediaHeader, StreamId, frame_metadata

MAX_PENDING: Final = 256
"""Frames that may be incomplete at once, over all streams."""
FRAME_WINDOW: Final = 1024
"""Frame indices per stream that :class:`FrameWindow` remembers."""


class Seen(Enum):
    """Whether a frame index is new to a :class:`FrameWindow`."""

    NEW = "new"
    DONE = "done"
    TOO_OLD = "too_old"


class FrameWindow:
    """Delivered frame indices of one stream: the highest, and a bitmap below it."""

    def __init__(self, size: int = FRAME_WINDOW) -> None:
        self.size = size
        self.highest = -1
        self._bitmap = 0

    def check(self, frame: int) -> Seen:
        """Whether ``frame`` was delivered, is too old to tell, or is new."""
        if frame > self.highest:
            return Seen.NEW
        offset = self.highest - frame
        if offset >= self.size:
            return Seen.TOO_OLD
        return Seen.DONE if (self._bitmap >> offset) & 1 else Seen.NEW

    def mark(self, frame: int) -> None:
        """Record ``frame`` as delivered."""
        if frame > self.highest:
            self._bitmap = self._bitmap << (frame - self.highest) if self.highest >= 0 else 0
            self.highest = frame
        self._bitmap = (self._bitmap | 1 << (self.highest - frame)) & ((1 << self.size) - 1)


@dataclass
class _Pending:
    header: MediaHeader
    metadata: bytes
    first_arrival: float
    parts: list[bytes | None]
    missing: int = field(init=False)

    def __post_init__(self) -> None:
        self.missing = len(self.parts)


class Outcome(Enum):
    """What :meth:`Reassembler.add` did with a packet."""

    PENDING = "pending"
    COMPLETE = "complete"
    REPLAY = "replay"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class WholeFrame:
    """A reassembled frame: its first packet's header, SFrame metadata and ciphertext."""

    header: MediaHeader
    metadata: bytes
    ciphertext: bytes
    arrival: float


class Reassembler:
    """Pending frames keyed by (stream, frame index), in order of their first packet."""

    def __init__(self, *, timeout: float, max_packets: int, max_pending: int = MAX_PENDING):
        self._timeout = timeout
        self._max_packets = max_packets
        self._max_pending = max_pending
        self._pending: dict[tuple[StreamId, int], _Pending] = {}
        self.incomplete = 0

    def add(
        self, header: MediaHeader, payload: bytes, now: float
    ) -> tuple[Outcome, WholeFrame | None]:
        """Add one packet; a whole frame comes back with :attr:`Outcome.COMPLETE`."""
        self.expire(now)
        if header.packets > self._max_packets:
            return Outcome.MALFORMED, None
        key = (header.stream, header.frame)
        pending = self._pending.get(key) or self._start(key, header, now)
        if frame_metadata(header) != pending.metadata or header.packets != len(pending.parts):
            return Outcome.MALFORMED, None
        if pending.parts[header.packet] is not None:
            return Outcome.REPLAY, None
        pending.parts[header.packet] = payload
        pending.missing -= 1
        if pending.missing:
            return Outcome.PENDING, None
        del self._pending[key]
        data = b"".join(p for p in pending.parts if p is not None)
        return Outcome.COMPLETE, WholeFrame(pending.header, pending.metadata, data, now)

    def expire(self, now: float) -> None:
        """Drop frames whose first packet is older than the timeout (oldest first)."""
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            if now - oldest.first_arrival < self._timeout:
                return
            del self._pending[key]
            self.incomplete += 1

    def flush(self) -> None:
        """Drop every pending frame (the call ended)."""
        self.incomplete += len(self._pending)
        self._pending.clear()

    def _start(self, key: tuple[StreamId, int], header: MediaHeader, now: float) -> _Pending:
        if len(self._pending) >= self._max_pending:
            del self._pending[next(iter(self._pending))]
            self.incomplete += 1
        parts: list[bytes | None] = [None] * header.packets
        pending = _Pending(header, frame_metadata(header), now, parts)
        self._pending[key] = pending
        return pending
