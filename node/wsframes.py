"""WebSocket framing (RFC 6455) for the server end of ``/v1/client``: a pure core.

    reader = FrameReader(max_message)
    reader.feed(data)              -> [Message | Ping | Close | Failure, ...]
    frame(opcode, payload)         a server frame (final, never masked: section 5.1)
    header(opcode, size)           the header of such a frame (its payload sent apart)
    close_frame(code)              a Close frame with ``code``
    accept_key(key)                the ``Sec-WebSocket-Accept`` value for a client's key

No extension is ever negotiated (so the RSV bits must be 0) and the server never
fragments. Client frames must be masked (section 5.3). A message whose parts add up to
more than ``max_message`` bytes fails with 1009 as soon as a frame header says so, before
its payload is buffered. After a ``Close`` or a ``Failure`` the reader yields nothing more.

Failures carry the close code the server answers with (section 7.4.1): 1002 for a
protocol error, 1007 for a text message or close reason that is not UTF-8, 1009 for a
message too large.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Final

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_NO_STATUS: Final = 1005  # never sent: a Close without a code
CLOSE_INVALID_DATA: Final = 1007
CLOSE_TOO_BIG: Final = 1009
MAX_CONTROL_PAYLOAD: Final = 125
_SENDABLE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013}
)
"""Close codes a peer may send: RFC 6455 section 7.4.1 and 1012 (service restart) and
1013 (try again later), registered since, as wsproto accepts them."""


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message; ``text`` for an opcode-1 message (``data`` is UTF-8)."""

    data: bytes
    text: bool


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's Close: its code (``CLOSE_NO_STATUS`` when it gave none)."""

    code: int


@dataclass(frozen=True, slots=True)
class Failure:
    """The peer broke the protocol: close with ``code``."""

    code: int
    reason: str


Event = Message | Ping | Close | Failure


class FrameReader:
    """Client frames in, events out (see the module docstring)."""

    __slots__ = ("_buffer", "_done", "_max", "_parts", "_size", "_text")

    def __init__(self, max_message: int) -> None:
        self._max = max_message
        self._buffer = bytearray()
        self._parts: list[bytes] | None = None  # a fragmented message in progress
        self._size = 0
        self._text = False
        self._done = False

    def feed(self, data: bytes) -> list[Event]:
        if self._done:
            return []
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        at = 0
        while taken := self._next_frame(buffer, at, events):
            at += taken
        if self.finished():
            buffer.clear()
        else:
            del buffer[:at]
        return events

    def finished(self) -> bool:
        """Whether a Close or a Failure ended the stream of events."""
        return self._done

    def _next_frame(self, buffer: bytearray, at: int, events: list[Event]) -> int:
        """Parse one frame at ``at``: the bytes it took, or 0 when incomplete or done."""
        available = len(buffer) - at
        if available < 2 or self._done:
            return 0
        first, second = buffer[at], buffer[at + 1]
        length, header = second & 0x7F, 2
        if first & 0x08 and length > MAX_CONTROL_PAYLOAD:
            length = MAX_CONTROL_PAYLOAD + 1  # a long control frame: refused on its header
        elif length == 126:
            if available < 4:
                return 0
            length, header = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
        elif length == 127:
            if available < 10:
                return 0
            length, header = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
        problem = self._check(first, second, length)
        if problem is not None:
            self._fail(events, *problem)
            return 0
        end = at + header + 4 + length
        if len(buffer) < end:
            return 0
        mask = bytes(buffer[at + header : at + header + 4])
        payload = unmask(bytes(buffer[at + header + 4 : end]), mask)
        self._dispatch(first & 0x80 != 0, first & 0x0F, payload, events)
        return end - at

    def _check(self, first: int, second: int, length: int) -> tuple[int, str] | None:
        opcode = first & 0x0F
        if first & 0x70:
            return CLOSE_PROTOCOL_ERROR, "reserved bits set"
        if not second & 0x80:
            return CLOSE_PROTOCOL_ERROR, "client frames must be masked"
        if opcode >= OP_CLOSE:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                return CLOSE_PROTOCOL_ERROR, "unknown control opcode"
            if not first & 0x80 or length > MAX_CONTROL_PAYLOAD:
                return CLOSE_PROTOCOL_ERROR, "control frames are final and short"
            return None
        if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            return CLOSE_PROTOCOL_ERROR, "unknown data opcode"
        if (opcode == OP_CONTINUATION) != (self._parts is not None):
            return CLOSE_PROTOCOL_ERROR, "unexpected continuation or data frame"
        if self._size + length > self._max:
            return CLOSE_TOO_BIG, "message too large"
        return None

    def _dispatch(self, final: bool, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode == OP_PING:
            events.append(Ping(payload))
        elif opcode == OP_CLOSE:
            self._closed(payload, events)
        elif opcode == OP_PONG:
            pass
        elif final and self._parts is None:
            self._message(payload, opcode == OP_TEXT, events)
        else:
            self._fragment(final, opcode, payload, events)

    def _fragment(self, final: bool, opcode: int, payload: bytes, events: list[Event]) -> None:
        if self._parts is None:
            self._parts, self._text = [], opcode == OP_TEXT
        self._parts.append(payload)
        self._size += len(payload)
        if final:
            data = b"".join(self._parts)
            self._parts, self._size = None, 0
            self._message(data, self._text, events)

    def _message(self, data: bytes, text: bool, events: list[Event]) -> None:
        if text and not _utf8(data):
            self._fail(events, CLOSE_INVALID_DATA, "text message is not UTF-8")
        else:
            events.append(Message(data, text))

    def _closed(self, payload: bytes, events: list[Event]) -> None:
        if not payload:
            code = CLOSE_NO_STATUS
        elif len(payload) == 1:
            self._fail(events, CLOSE_PROTOCOL_ERROR, "close payload of one byte")
            return
        else:
            code = int.from_bytes(payload[:2], "big")
            if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
                self._fail(events, CLOSE_PROTOCOL_ERROR, "invalid close code")
                return
            if not _utf8(payload[2:]):
                self._fail(events, CLOSE_INVALID_DATA, "close reason is not UTF-8")
                return
        self._done = True
        events.append(Close(code))

    def _fail(self, events: list[Event], code: int, reason: str) -> None:
        self._done = True
        events.append(Failure(code, reason))


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (section 5.3)."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame."""
    return header(opcode, len(payload)) + payload


def header(opcode: int, size: int) -> bytes:
    """The header of a final, unmasked frame of ``size`` payload bytes (section 5.2)."""
    if size < 126:
        return bytes((0x80 | opcode, size))
    if size < 1 << 16:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")


def close_frame(code: int) -> bytes:
    return frame(OP_CLOSE, code.to_bytes(2, "big"))


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key`` (section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())  # noqa: S324 (RFC 6455)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
