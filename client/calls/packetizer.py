"""Sender side: SFrame-encrypt an encoded frame and split it into media datagrams.

For each frame (DESIGN section 9, issue 17):

1. the plaintext is the frame's send timestamp (:data:`SEND_TIME`, microseconds of the
   sender's clock, signed) followed by the encoded frame; the timestamp travels end to end
   encrypted, like WebRTC's absolute-capture-time extension, so only the peer sees it;
2. it is SFrame-encrypted (RFC 9605, :class:`client.calls.keys.MediaCrypto`) with the frame's
   position (:func:`wire.media.frame_metadata`) as metadata, i.e. in the AAD;
3. the ciphertext is split evenly into ``n`` slices of at most :data:`wire.media.MAX_PAYLOAD`
   bytes, each behind a :class:`wire.media.MediaHeader`, so every datagram fits an RFC 9221
   DATAGRAM frame of :data:`wire.media.MAX_DATAGRAM` bytes.

Group and object ids follow Media over QUIC Transport (draft-ietf-moq-transport): a keyframe
opens a new group as object 0; later frames are objects 1, 2, ... of that group.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Final

from client.calls.errors import CallError
from client.calls.fixture import FixtureFrame
from client.calls.keys import FrameCrypto
from wire.media import (
    MAX_PAYLOAD,
    SILENCE,
    MediaHeader,
    MediaKind,
    StreamId,
    encode_datagram,
    frame_metadata,
)

SEND_TIME: Final = struct.Struct(">q")
"""The plaintext prefix: the sender's send time in microseconds (signed 64-bit)."""
MAX_PACKETS: Final = 1024
"""Most datagrams per frame (about 1.2 MB of ciphertext); receivers refuse more."""
_US: Final = 1_000_000
_MAX_OBJECT: Final = 0xFFFF


@dataclass(frozen=True)
class OutgoingFrame:
    """An encoded frame to send, with what the clear header says about it."""

    kind: MediaKind
    data: bytes = field(repr=False)
    keyframe: bool
    audio_level: int = SILENCE
    voice: bool = False
    layer: int = 0

    @classmethod
    def from_fixture(cls, frame: FixtureFrame) -> OutgoingFrame:
        """The frame of a media fixture."""
        return cls(frame.kind, frame.data, frame.keyframe, frame.audio_level, frame.voice)


@dataclass
class _StreamState:
    next_frame: int = 0
    group: int = 0
    next_object: int = 0
    started: bool = False


def split(data: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """``data`` in the fewest slices of at most ``max_payload`` bytes, of near-equal size."""
    if not data:
        raise CallError("nothing to packetize")
    count = -(-len(data) // max_payload)
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


class Packetizer:
    """Turns one sender's encoded frames into media datagrams (pure; ``now`` in seconds)."""

    def __init__(self, crypto: FrameCrypto, sender: int, *, max_payload: int = MAX_PAYLOAD):
        if not 0 < max_payload <= MAX_PAYLOAD:
            raise CallError(f"max payload must be 1..{MAX_PAYLOAD}")
        self._crypto = crypto
        self._sender = sender
        self._max_payload = max_payload
        self._streams: dict[StreamId, _StreamState] = {}
        self.frames_sent = 0
        self.datagrams_sent = 0

    def packetize(self, frame: OutgoingFrame, *, now: float) -> list[bytes]:
        """The datagrams of ``frame``, sent at ``now`` (its send timestamp)."""
        stream = StreamId(self._sender, frame.kind, frame.layer)
        state = self._streams.setdefault(stream, _StreamState())
        header = self._frame_header(stream, state, frame)
        plaintext = SEND_TIME.pack(round(now * _US)) + frame.data
        ciphertext = self._crypto.protect(frame_metadata(header), plaintext, now=now)
        slices = split(ciphertext, self._max_payload)
        if len(slices) > MAX_PACKETS:
            raise CallError(f"frame needs more than {MAX_PACKETS} datagrams")
        datagrams = [
            encode_datagram(replace(header, packet=i, packets=len(slices)), part)
            for i, part in enumerate(slices)
        ]
        state.next_frame += 1
        self.frames_sent += 1
        self.datagrams_sent += len(datagrams)
        return datagrams

    @staticmethod
    def _frame_header(stream: StreamId, state: _StreamState, frame: OutgoingFrame) -> MediaHeader:
        """The header of packet 0, moving the stream to the frame's group and object."""
        if frame.keyframe:
            state.group += 1 if state.started else 0
            state.next_object = 0
        elif state.next_object == 0 or state.next_object > _MAX_OBJECT:
            raise CallError("a stream starts with a keyframe and needs one every 65,536 frames")
        state.started = True
        obj = state.next_object
        state.next_object += 1
        return MediaHeader(
            stream,
            state.group,
            obj,
            state.next_frame,
            0,
            1,
            keyframe=frame.keyframe,
            audio_level=frame.audio_level,
            voice=frame.voice,
        )
