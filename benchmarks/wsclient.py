"""A lean WebSocket client (RFC 6455) for the load generator, on one trio socket stream.

The load generator shares the machine's cores with the node, so its own cost per message
is part of what the node benchmark measures; ``trio_websocket`` (a reader task, channels
and wsproto events per message) costs about as much CPU per envelope as the node itself.
This client does only what the benchmark needs, but by the rules: every frame it sends is
masked with a fresh random key, it answers pings, and it reads fragmented messages.

    ws = await connect(url, max_message)          the opening handshake
    await ws.send_message(data)                   one binary message
    data = await ws.get_message()                 the next data message (bytes or str)
    await ws.aclose()
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Final
from urllib.parse import urlsplit

import trio

ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECEIVE_BYTES: Final = 256 * 1024
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The node closed the WebSocket (``code``) or the connection broke (1006)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"websocket closed ({code})")
        self.code = code


class WebSocket:
    """One client WebSocket; one task may read while another writes."""

    def __init__(self, stream: trio.SocketStream, buffer: bytearray, max_message: int) -> None:
        self._stream = stream
        self._buffer = buffer
        self._max = max_message
        self._parts: list[bytes] = []

    async def send_message(self, data: bytes) -> None:
        await self._send(OP_BINARY, data)

    async def _send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        try:
            await self._stream.send_all(header + mask + _xor(payload, mask))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise Closed(1006) from exc

    async def get_message(self) -> bytes | str:
        while True:
            opcode, final, payload = await self._frame()
            if opcode == OP_PING:
                await self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                raise Closed(code)
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                if opcode != OP_CONTINUATION:
                    self._text = opcode == OP_TEXT
                self._parts.append(payload)
                if final:
                    data = b"".join(self._parts)
                    self._parts.clear()
                    return data.decode() if self._text else data

    def message_ready(self) -> bytes | None:
        """The next binary message if it is already read in full (no wait, no socket read);
        None otherwise, or when a control frame or a fragment comes first."""
        buffer = self._buffer
        if len(buffer) < 2 or self._parts or buffer[0] != 0x80 | OP_BINARY:
            return None
        size, header = buffer[1] & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return None
            size, header = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            if len(buffer) < 10:
                return None
            size, header = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < header + size or size > self._max:
            return None
        data = bytes(buffer[header : header + size])
        del buffer[: header + size]
        return data

    async def _frame(self) -> tuple[int, bool, bytes]:
        buffer = self._buffer
        await self._fill(2)
        first, size = buffer[0], buffer[1] & 0x7F
        header = 2
        if size == 126:
            await self._fill(4)
            size, header = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            await self._fill(10)
            size, header = int.from_bytes(buffer[2:10], "big"), 10
        if size > self._max:
            raise Closed(1009)
        await self._fill(header + size)
        payload = bytes(buffer[header : header + size])
        del buffer[: header + size]
        return first & 0x0F, bool(first & 0x80), payload

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise Closed(1006) from exc
            if not data:
                raise Closed(1006)
            self._buffer += data

    async def aclose(self) -> None:
        await self._stream.aclose()

    _text = False


async def connect(url: str, max_message: int) -> WebSocket:
    """Open ``ws://host:port/path`` and complete the opening handshake."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stream = await trio.open_tcp_stream(host, port)
    key = base64.b64encode(os.urandom(16))
    request = (
        (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    try:
        await stream.send_all(request)
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise Closed(1006)
            buffer += data
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        accept = base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())  # noqa: S324
        if not head.startswith(b"HTTP/1.1 101 ") or accept not in head:
            raise Closed(1002)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return WebSocket(stream, bytearray(rest), max_message)


def _xor(payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )
