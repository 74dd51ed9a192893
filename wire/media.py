"""The clear header of a media datagram: only what forwarding needs (DESIGN section 9).

A call's media travels in QUIC DATAGRAM frames (RFC 9221), each at most :data:`MAX_DATAGRAM`
bytes, so a datagram is never fragmented and a lost one costs one packet of one frame. An
encoded audio or video frame is first SFrame-encrypted end to end (RFC 9605), then split into
packets; each packet is this fixed header followed by a slice of the SFrame ciphertext. A
node reads the header to forward, select layers and pick loud speakers; it never sees media.

The fields follow the object model of Media over QUIC Transport
(draft-ietf-moq-transport, "Data Model"): a *track* is one stream of one sender (here
:class:`StreamId`: sender, kind, simulcast layer), a *group* starts at a keyframe and can be
decoded on its own, an *object* is one frame within its group. The ``frame`` index numbers
every frame of a stream from 0, across groups, so a receiver finds losses by its gaps; the
packet index and count split one object over several datagrams. The audio level is the
RFC 6464 client-to-mixer value: a voice-activity bit and the level in -dBov, 0 (loudest)
to 127 (silence), so a forwarding unit can pick the loudest speakers without keys.

Layout (network byte order, :data:`HEADER_SIZE` = 21 bytes, :data:`_HEADER` struct)::

    0      version (high 4 bits) | type (low 4 bits)          VERSION, TYPE_MEDIA or
                                                              TYPE_SIGNATURE
    1      flags: kind (bit 7) | keyframe (bit 6) | layer (bits 5-4) | 0000
    2      audio level: voice activity (bit 7) | level 0..127 (RFC 6464 section 3)
    3-6    sender       u32   opaque per-call participant id (MoQ track namespace)
    7-10   group        u32   MoQ group id (increments at each keyframe; every Opus
                              frame is a keyframe, so each audio frame is a group)
    11-12  object       u16   MoQ object id within the group (0 at the keyframe)
    13-16  frame        u32   frame index in the stream, from 0, never reused
    17-18  packet       u16   index of this packet in the frame
    19-20  packets      u16   packets in the frame (1..)
    21-    payload            a non-empty slice of the SFrame ciphertext

A *signature datagram* (:data:`TYPE_SIGNATURE`) has the same header and carries a slice
of a sender's signature over the digests of its recent frames on one track (an encoded
``wire.meeting.FrameSignature``, issue 18: "each sender signs, at intervals, a hash of its
recent frames"): sender, kind and layer name the track it covers, so a forwarding unit
sends it along with that track; ``frame`` numbers the track's signatures from 0 and
packet / packets split one over several datagrams. It is no frame: group, object, the
keyframe flag and the level byte are zero, zero, clear and silence without voice
(:func:`signature_header`). Only meetings use it; a 1:1 call's relay refuses it.

:func:`frame_metadata` gives the frame-level fields a sender binds into the SFrame AAD
(RFC 9605 section 4.4.3 "metadata"), so a node cannot move a frame to another position or
stream kind undetected; the sender id and the packetisation are left out, so a node may
re-map sender ids between legs.

:func:`decode_datagram` raises only :class:`wire.errors.WireError` (codes ``wire.malformed``,
``wire.too_large``, ``wire.bad_version``, ``wire.unknown_type``, ``wire.invalid_value``).

Forwarding reads the header on every datagram, so it has a fast path that builds no header
object: :func:`peek_route` (the fields a forwarding unit acts on, the datagram type
included, as a plain tuple) accepts exactly the datagrams :func:`decode_datagram` accepts,
and :func:`peek_sender` (the sender alone, for a 1:1 call's relay) exactly its media
datagrams; both return ``None`` for every other input, never raising: a malformed datagram
is dropped, and its error code would cost more to build than the decision it informs.
:func:`replace_sender` rewrites the four sender bytes for the next leg.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from wire import errors
from wire.errors import WireError

MAX_DATAGRAM: Final = 1200
"""Largest media datagram (header + payload), bytes: one RFC 9221 DATAGRAM frame's payload.

The QUIC packet around it adds its own header, frame type and length and AEAD tag (some 30
to 60 bytes), so the connection must advertise ``max_datagram_frame_size`` above this and the
path must carry UDP payloads of about 1,260 bytes; on a path held to QUIC's 1,200-byte
minimum (RFC 9000 section 14) a sender passes a smaller ``max_payload`` to the packetizer.
"""

VERSION: Final = 1
"""Version of this header layout (high nibble of byte 0)."""
TYPE_MEDIA: Final = 1
"""Datagram type of a media packet (low nibble of byte 0)."""
TYPE_SIGNATURE: Final = 2
"""Datagram type of a slice of a signature over a track's frames (module docstring);
other types are refused."""
DATAGRAM_TYPES: Final = (TYPE_MEDIA, TYPE_SIGNATURE)

_HEADER: Final = struct.Struct(">BBBIIHIHH")
HEADER_SIZE: Final = _HEADER.size
"""Bytes of the clear header (21)."""
MAX_PAYLOAD: Final = MAX_DATAGRAM - HEADER_SIZE
"""Largest slice of SFrame ciphertext in one datagram (1,179 bytes)."""

MAX_LAYER: Final = 3
"""Highest simulcast layer (two bits); audio has only layer 0."""
MAX_AUDIO_LEVEL: Final = 127
"""RFC 6464: the level is -dBov, 0..127; 127 is silence (or below -127 dBov)."""
SILENCE: Final = MAX_AUDIO_LEVEL

_U16: Final = 0xFFFF
_U32: Final = 0xFFFF_FFFF
_KIND_BIT: Final = 0x80
_KEYFRAME_BIT: Final = 0x40
_LAYER_SHIFT: Final = 4
_LAYER_MASK: Final = 0x30
_RESERVED_MASK: Final = 0x0F
_VOICE_BIT: Final = 0x80
_LEVEL_MASK: Final = 0x7F
_METADATA: Final = struct.Struct(">BBIHI")
_ROUTE: Final = struct.Struct(">BBBI4xH4xHH")
"""The header with group and frame skipped: what forwarding reads or must check."""
_FIRST: Final = VERSION << 4 | TYPE_MEDIA
_FIRST_SIGNATURE: Final = VERSION << 4 | TYPE_SIGNATURE
_NO_FRAME: Final = (0, 0, False, SILENCE, False)
"""A signature datagram's group, object, keyframe flag, level and voice activity."""
_SENDER_AT: Final = 3
_SENDER_END: Final = _SENDER_AT + 4


class MediaKind(IntEnum):
    """The kind of a stream (one bit of the flags byte)."""

    AUDIO = 0
    VIDEO = 1


def _invalid(message: str) -> WireError:
    return WireError(errors.INVALID_VALUE, message)


def _check_range(value: int, hi: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise _invalid(f"{what} must be an integer in 0..{hi}")


@dataclass(frozen=True, slots=True)
class StreamId:
    """A MoQ track: one ``kind`` of media of one ``sender``, at simulcast ``layer``."""

    sender: int
    kind: MediaKind
    layer: int = 0

    def __post_init__(self) -> None:
        _check_range(self.sender, _U32, "sender")
        if not isinstance(self.kind, MediaKind):
            raise _invalid("kind must be a MediaKind")
        _check_range(self.layer, MAX_LAYER, "layer")
        if self.kind is MediaKind.AUDIO and self.layer != 0:
            raise _invalid("audio has only layer 0")


@dataclass(frozen=True, slots=True)
class MediaHeader:
    """The clear header of one media datagram; every field is checked on construction.

    ``datagram_type`` is :data:`TYPE_MEDIA` (a packet of a frame) or :data:`TYPE_SIGNATURE`
    (a packet of a track's signature: ``frame`` is the signature's index, and the
    frame-only fields hold the values :func:`signature_header` gives)."""

    stream: StreamId
    group: int
    object: int
    frame: int
    packet: int
    packets: int
    keyframe: bool = False
    audio_level: int = SILENCE
    voice: bool = False
    datagram_type: int = TYPE_MEDIA

    def __post_init__(self) -> None:
        _check_range(self.group, _U32, "group")
        _check_range(self.object, _U16, "object")
        _check_range(self.frame, _U32, "frame")
        _check_range(self.packets, _U16, "packets")
        _check_range(self.packet, _U16, "packet")
        _check_range(self.audio_level, MAX_AUDIO_LEVEL, "audio level")
        if self.packets == 0 or self.packet >= self.packets:
            raise _invalid("packet index must be below a non-zero packet count")
        if self.datagram_type == TYPE_SIGNATURE:
            frame_only = (self.group, self.object, self.keyframe, self.audio_level, self.voice)
            if frame_only != _NO_FRAME:
                raise _invalid("a signature datagram has no group, object, keyframe or level")
        elif self.datagram_type != TYPE_MEDIA:
            raise _invalid("the datagram type is media or signature")
        elif self.keyframe != (self.object == 0):
            raise _invalid("a keyframe starts a group (object 0), and only a keyframe does")

    @property
    def is_signature(self) -> bool:
        """Whether this is a packet of a signature (:data:`TYPE_SIGNATURE`), not of a frame."""
        return self.datagram_type == TYPE_SIGNATURE

    def encode(self) -> bytes:
        """The :data:`HEADER_SIZE` bytes of this header."""
        s = self.stream
        flags = (
            (_KIND_BIT if s.kind is MediaKind.VIDEO else 0)
            | (_KEYFRAME_BIT if self.keyframe else 0)
            | s.layer << _LAYER_SHIFT
        )
        level = (_VOICE_BIT if self.voice else 0) | self.audio_level
        return _HEADER.pack(
            VERSION << 4 | self.datagram_type,
            flags,
            level,
            s.sender,
            self.group,
            self.object,
            self.frame,
            self.packet,
            self.packets,
        )


def signature_header(stream: StreamId, index: int, packet: int, packets: int) -> MediaHeader:
    """The header of packet ``packet`` of ``packets`` of signature ``index`` of ``stream``."""
    return MediaHeader(stream, 0, 0, index, packet, packets, datagram_type=TYPE_SIGNATURE)


def encode_datagram(header: MediaHeader, payload: bytes) -> bytes:
    """``header || payload``; ``payload`` must hold 1..:data:`MAX_PAYLOAD` bytes."""
    if not 0 < len(payload) <= MAX_PAYLOAD:
        raise WireError(errors.TOO_LARGE, f"media payload must be 1..{MAX_PAYLOAD} bytes")
    return header.encode() + bytes(payload)


def _decode_header(data: bytes) -> MediaHeader:
    first, flags, level, sender, group, obj, frame, packet, packets = _HEADER.unpack_from(data)
    if first >> 4 != VERSION:
        raise WireError(errors.BAD_VERSION, f"media header version {first >> 4}")
    datagram_type = first & 0x0F
    if datagram_type not in DATAGRAM_TYPES:
        raise WireError(errors.UNKNOWN_TYPE, f"media datagram type {datagram_type}")
    if flags & _RESERVED_MASK:
        raise _invalid("reserved flag bits must be zero")
    kind = MediaKind.VIDEO if flags & _KIND_BIT else MediaKind.AUDIO
    stream = StreamId(sender, kind, (flags & _LAYER_MASK) >> _LAYER_SHIFT)
    return MediaHeader(
        stream,
        group,
        obj,
        frame,
        packet,
        packets,
        keyframe=bool(flags & _KEYFRAME_BIT),
        audio_level=level & _LEVEL_MASK,
        voice=bool(level & _VOICE_BIT),
        datagram_type=datagram_type,
    )


def decode_datagram(data: bytes) -> tuple[MediaHeader, bytes]:
    """``(header, payload)`` of one media or signature datagram (``header.datagram_type``
    says which); raises only :class:`WireError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(errors.MALFORMED, "a media datagram is bytes")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM:
        raise WireError(errors.TOO_LARGE, f"media datagram over {MAX_DATAGRAM} bytes")
    if len(data) <= HEADER_SIZE:
        raise WireError(errors.MALFORMED, "media datagram without header and payload")
    return _decode_header(data), data[HEADER_SIZE:]


def frame_metadata(header: MediaHeader) -> bytes:
    """The frame-level fields bound into the SFrame AAD (RFC 9605 section 4.4.3).

    Version, kind, layer and keyframe flag, group, object and frame index: everything that
    places the frame, and nothing a node may rewrite (sender id, packetisation, level).
    """
    s = header.stream
    flags = s.kind << 7 | (_KEYFRAME_BIT if header.keyframe else 0) | s.layer << _LAYER_SHIFT
    return _METADATA.pack(VERSION, flags, header.group, header.object, header.frame)


def metadata_track(metadata: bytes) -> tuple[MediaKind, int, int]:
    """``(kind, layer, frame index)`` of a frame from its :func:`frame_metadata` (what a
    receiver holds when the frame authenticates); :class:`WireError` if it is none."""
    if len(metadata) != _METADATA.size:
        raise WireError(errors.MALFORMED, "frame metadata of another size")
    version, flags, _group, _object, frame = _METADATA.unpack(metadata)
    if version != VERSION or flags & _RESERVED_MASK:
        raise _invalid("frame metadata of another version or with reserved bits")
    kind = MediaKind.VIDEO if flags & _KIND_BIT else MediaKind.AUDIO
    return kind, (flags & _LAYER_MASK) >> _LAYER_SHIFT, frame


Route = tuple[int, MediaKind, int, bool, int, bool, int]
"""What forwarding acts on: (sender, kind, layer, keyframe, audio level, voice activity,
datagram type)."""
_KINDS: Final = (MediaKind.AUDIO, MediaKind.VIDEO)  # by the kind bit
_SIGNATURE_LEVEL: Final = SILENCE  # the level byte of a signature datagram: no voice bit


def _media_fields(data: object) -> tuple[int, int, int] | None:
    """``(flags, level byte, sender)`` of a media datagram (:data:`TYPE_MEDIA`) that
    :func:`decode_datagram` accepts, else None. The same checks, in one unpack and a few
    integer tests; the payload is not read."""
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            return None
        data = bytes(data)  # as decode_datagram: bytes of any bytes-like, then its length
    if not HEADER_SIZE < len(data) <= MAX_DATAGRAM:
        return None
    first, flags, level, sender, obj, packet, packets = _ROUTE.unpack_from(data)
    if (
        first != _FIRST  # version and type
        or flags & _RESERVED_MASK
        or (flags & _LAYER_MASK and not flags & _KIND_BIT)  # audio has only layer 0
        or packet >= packets  # packet index below a non-zero count
        or (not flags & _KEYFRAME_BIT) == (obj == 0)  # a keyframe iff object 0
    ):
        return None
    return flags, level, sender


def _signature_ok(data: bytes) -> bool:
    """Whether the header of ``data`` (of a valid length, type signature) is one
    :func:`decode_datagram` accepts."""
    _, flags, level, _, group, obj, _, packet, packets = _HEADER.unpack_from(data)
    return not (
        flags & (_RESERVED_MASK | _KEYFRAME_BIT)
        or (flags & _LAYER_MASK and not flags & _KIND_BIT)
        or level != _SIGNATURE_LEVEL
        or group
        or obj
        or packet >= packets
    )


def peek_sender(data: bytes) -> int | None:
    """The sender id of a media datagram (:data:`TYPE_MEDIA`), or None where
    :func:`decode_datagram` would raise or gives a signature datagram.

    The forwarding fast path of a 1:1 call's relay, which forwards frames only:
    ``decode_datagram(data)[0].stream.sender`` without building the header; never raises."""
    fields = _media_fields(data)
    return None if fields is None else fields[2]


def peek_route(data: bytes) -> Route | None:
    """``(sender, kind, layer, keyframe, audio_level, voice, datagram_type)`` of a media or
    signature datagram as a plain tuple, the same values :func:`decode_datagram` gives, or
    None where it would raise.

    What a selective forwarding unit acts on (layer selection, keyframe waits, the loudest
    speakers by the RFC 6464 level, signatures along their track); never raises, never
    reads the payload. For a media datagram the checks of :func:`_media_fields`, inlined:
    this runs once per datagram forwarded."""
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            return None  # type: ignore[unreachable]  # (callers may hand anything)
        data = bytes(data)  # as decode_datagram: bytes of any bytes-like, then its length
    if not HEADER_SIZE < len(data) <= MAX_DATAGRAM:
        return None
    first, flags, level, sender, obj, packet, packets = _ROUTE.unpack_from(data)
    if first == _FIRST:  # version and type, then as _media_fields
        if (
            flags & _RESERVED_MASK
            or (flags & _LAYER_MASK and not flags & _KIND_BIT)
            or packet >= packets
            or (not flags & _KEYFRAME_BIT) == (obj == 0)
        ):
            return None
        datagram_type = TYPE_MEDIA
    elif first == _FIRST_SIGNATURE and _signature_ok(data):
        datagram_type = TYPE_SIGNATURE
    else:
        return None
    return (
        sender,
        _KINDS[flags >> 7],
        (flags & _LAYER_MASK) >> _LAYER_SHIFT,
        bool(flags & _KEYFRAME_BIT),
        level & _LEVEL_MASK,
        bool(level & _VOICE_BIT),
        datagram_type,
    )


def replace_sender(data: bytes, sender: bytes) -> bytes:
    """``data`` (any bytes-like) as bytes with the four sender bytes (3-6) replaced by
    ``sender``; for a datagram :func:`peek_route` accepted. The SFrame metadata leaves the
    sender out (:func:`frame_metadata`), so the receiver still authenticates the frame."""
    if len(sender) != _SENDER_END - _SENDER_AT:
        raise ValueError("a sender id is four bytes")
    if type(data) is not bytes:
        data = bytes(data)  # slices count bytes, also of a memoryview of wider items
    return b"".join((data[:_SENDER_AT], sender, data[_SENDER_END:]))
