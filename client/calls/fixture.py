"""Real encoded media for tests, demos, benchmarks and load generators, without an encoder.

``fixture.bin`` (package data next to this module) holds a few seconds of a synthetic test
pattern encoded as VP8 (30 fps) and a tone encoded as Opus (48 kHz, 20 ms frames), made once
by :mod:`client.calls.make_fixture` with PyAV (the optional ``media`` extra). Reading it needs
no PyAV. Each frame carries its kind, media timestamp, keyframe flag, RFC 6464 audio level
and SHA-256, so a receiver can check every frame it decrypts against the sender's digest.

File layout (network byte order)::

    file header   magic "SRMF", version u8, reserved u8 (0), frame count u16, period u32 (us)
    per frame     kind u8 (0 audio, 1 video), keyframe u8 (0/1), audio level u8 (0..127),
                  voice u8 (0/1), timestamp u32 (us from the clip start), length u32,
                  SHA-256 of the data (32 bytes), then ``length`` bytes of encoded frame

The clip loops: :func:`schedule` plays it for any duration, the ``n``-th frame of a kind being
the fixture's frame ``n mod count`` of that kind, ``period`` later per loop.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Final

from client.calls.errors import FixtureError
from wire.media import MAX_AUDIO_LEVEL, MediaKind

MAGIC: Final = b"SRMF"
FORMAT_VERSION: Final = 1
FIXTURE_RESOURCE: Final = "fixture.bin"
MAX_FIXTURE_SIZE: Final = 1024 * 1024
"""A fixture file larger than this is refused (it ships inside the package)."""

_FILE_HEADER: Final = struct.Struct(">4sBBHI")
_FRAME_HEADER: Final = struct.Struct(">BBBBII32s")


@dataclass(frozen=True)
class FixtureFrame:
    """One encoded frame of the clip; ``timestamp_us`` counts from the clip start."""

    kind: MediaKind
    timestamp_us: int
    keyframe: bool
    audio_level: int
    voice: bool
    data: bytes = field(repr=False)
    sha256: bytes = field(repr=False)


@dataclass(frozen=True)
class Fixture:
    """The whole clip: frames of both kinds in file order, and its loop ``period_us``."""

    period_us: int
    frames: tuple[FixtureFrame, ...]
    _by_kind: dict[MediaKind, tuple[FixtureFrame, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        by_kind = {
            kind: tuple(sorted((f for f in self.frames if f.kind is kind), key=_timestamp))
            for kind in MediaKind
        }
        object.__setattr__(self, "_by_kind", by_kind)

    def of_kind(self, kind: MediaKind) -> tuple[FixtureFrame, ...]:
        """The frames of ``kind`` in timestamp order."""
        return self._by_kind[kind]

    def frame_at(self, kind: MediaKind, index: int) -> FixtureFrame:
        """The frame a looping sender sends as its ``index``-th frame of ``kind``."""
        frames = self._by_kind[kind]
        if not frames:
            raise FixtureError(f"the fixture has no {kind.name.lower()} frames")
        return frames[index % len(frames)]


def _timestamp(frame: FixtureFrame) -> int:
    return frame.timestamp_us


def make_frame(
    kind: MediaKind,
    timestamp_us: int,
    data: bytes,
    *,
    keyframe: bool,
    audio_level: int = MAX_AUDIO_LEVEL,
    voice: bool = False,
) -> FixtureFrame:
    """A frame with its SHA-256 computed from ``data``."""
    digest = hashlib.sha256(data).digest()
    return FixtureFrame(kind, timestamp_us, keyframe, audio_level, voice, bytes(data), digest)


def encode_fixture(fixture: Fixture) -> bytes:
    """The file bytes of ``fixture``."""
    parts = [_FILE_HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(fixture.frames), fixture.period_us)]
    for f in fixture.frames:
        parts.append(
            _FRAME_HEADER.pack(
                f.kind,
                f.keyframe,
                f.audio_level,
                f.voice,
                f.timestamp_us,
                len(f.data),
                f.sha256,
            )
        )
        parts.append(f.data)
    return b"".join(parts)


def _decode_frame(data: bytes, pos: int) -> tuple[FixtureFrame, int]:
    if pos + _FRAME_HEADER.size > len(data):
        raise FixtureError("truncated fixture frame header")
    kind, key, level, voice, ts, length, digest = _FRAME_HEADER.unpack_from(data, pos)
    start = pos + _FRAME_HEADER.size
    body = data[start : start + length]
    if len(body) != length or length == 0:
        raise FixtureError("truncated or empty fixture frame")
    if kind not in (0, 1) or key > 1 or voice > 1 or level > MAX_AUDIO_LEVEL:
        raise FixtureError("fixture frame with an invalid kind, flag or level")
    if hashlib.sha256(body).digest() != digest:
        raise FixtureError("fixture frame does not match its SHA-256")
    frame = FixtureFrame(MediaKind(kind), ts, bool(key), level, bool(voice), body, digest)
    return frame, start + length


def decode_fixture(data: bytes) -> Fixture:
    """Parse and verify a fixture file; raises :class:`FixtureError` on anything wrong."""
    if len(data) > MAX_FIXTURE_SIZE or len(data) < _FILE_HEADER.size:
        raise FixtureError("fixture file of impossible size")
    magic, version, reserved, count, period = _FILE_HEADER.unpack_from(data)
    if magic != MAGIC or version != FORMAT_VERSION or reserved != 0:
        raise FixtureError("not a version 1 media fixture")
    frames: list[FixtureFrame] = []
    pos = _FILE_HEADER.size
    for _ in range(count):
        frame, pos = _decode_frame(data, pos)
        frames.append(frame)
    if pos != len(data):
        raise FixtureError("trailing bytes after the last fixture frame")
    if period <= 0 or any(f.timestamp_us >= period for f in frames):
        raise FixtureError("fixture frame timestamps must lie within the loop period")
    return Fixture(period, tuple(frames))


@cache
def load_fixture() -> Fixture:
    """The fixture shipped with the package (read and verified once per process)."""
    data = resources.files(__package__).joinpath(FIXTURE_RESOURCE).read_bytes()
    return decode_fixture(data)


@dataclass(frozen=True)
class ScheduledFrame:
    """A frame to send ``at_us`` after the call start, as frame ``index`` of its stream."""

    at_us: int
    index: int
    frame: FixtureFrame


def schedule(fixture: Fixture, kind: MediaKind, duration_us: int) -> Iterator[ScheduledFrame]:
    """The frames of ``kind`` a sender sends in ``duration_us``, looping the clip."""
    frames = fixture.of_kind(kind)
    if not frames:
        return
    index = 0
    while True:
        loop, pos = divmod(index, len(frames))
        at = loop * fixture.period_us + frames[pos].timestamp_us
        if at >= duration_us:
            return
        yield ScheduledFrame(at, index, frames[pos])
        index += 1


def play(
    fixture: Fixture, kinds: tuple[MediaKind, ...], duration_us: int
) -> Iterator[ScheduledFrame]:
    """The frames of all ``kinds`` in send order (ties: audio first)."""
    streams = [schedule(fixture, k, duration_us) for k in sorted(kinds)]
    return heapq.merge(*streams, key=lambda s: (s.at_us, s.frame.kind))
