"""ClientSocket.send_many writes messages given as pieces (``sendmsg``, at most ``MAX_IOV``
pieces a call, partial writes resumed): over a real socket with a small send buffer and a
slow reader, every message arrives as one whole binary frame, in each sender's order,
while plain ``send`` calls from another task go out between them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from node.gateway import MAX_IOV, ClientSocket

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
BIG = bytes(range(256)) * 400  # 100 KiB, one object shared by many messages (a group body)


def many_messages() -> list[list[bytes]]:
    """300 messages of 3 pieces (some 100 KiB, some empty), tagged with their index."""
    out: list[list[bytes]] = []
    for i in range(300):
        tag = b"M%05d:" % i
        if i % 15 == 0:
            body = BIG
        elif i % 7 == 0:
            body = b""
        else:
            body = bytes([i % 256]) * (i * 37 % 3000)
        out.append([tag, body, b":end%d" % i])
    return out


def plain_messages() -> list[bytes]:
    return [b"P%05d:" % i + bytes([i % 256]) * (i * 131 % 70000) for i in range(150)]


def spy_on_sendmsg(ws: ClientSocket) -> list[tuple[int, int, int]]:
    """Record (pieces, bytes offered, bytes sent) of every ``sendmsg`` the socket makes."""
    calls: list[tuple[int, int, int]] = []
    real = ws._sendmsg

    async def sendmsg(chunk: list[bytes | memoryview]) -> int:
        sent = await real(chunk)
        calls.append((len(chunk), sum(map(len, chunk)), sent))
        return sent

    ws._sendmsg = sendmsg
    return calls


def read_frames(buffer: bytearray) -> list[bytes]:
    """Take the complete unmasked binary frames at the start of ``buffer`` (RFC 6455
    section 5.2), leaving any partial frame in it."""
    out: list[bytes] = []
    while len(buffer) >= 2:
        first, second = buffer[0], buffer[1]
        assert first == 0x82, f"not a final binary frame: {first:#x}"
        assert second & 0x80 == 0, "a server frame must not be masked"
        size, at = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                break
            size, at = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            if len(buffer) < 10:
                break
            size, at = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < at + size:
            break
        out.append(bytes(buffer[at : at + size]))
        del buffer[: at + size]
    return out


@asynccontextmanager
async def connected(kind: str) -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    """(server side, client side) of a real connection, the server's send buffer small."""
    if kind == "tcp":
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listener.socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            accepted: list[trio.SocketStream] = []

            async def accept() -> None:
                stream = await listener.accept()
                assert isinstance(stream, trio.SocketStream)
                accepted.append(stream)

            nursery.start_soon(accept)
            client = await trio.open_tcp_stream("127.0.0.1", port)
        await listener.aclose()
        server = accepted[0]
    else:
        a, b = trio.socket.socketpair()
        server, client = trio.SocketStream(a), trio.SocketStream(b)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    try:
        yield server, client
    finally:
        await server.aclose()
        await client.aclose()


@pytest.mark.parametrize("kind", ["tcp", "socketpair"])
async def test_pieces_arrive_whole_and_in_order_under_a_slow_reader(kind: str) -> None:
    batch = many_messages()
    assert sum(1 + len(m) for m in batch) > MAX_IOV  # one write needs several sendmsg calls
    small_batches = [many_messages()[i : i + 20] for i in range(0, 100, 20)]
    expected_many = [b"".join(m) for m in batch] + [
        b"".join(m) for part in small_batches for m in part
    ]
    plain = plain_messages()
    total = len(expected_many) + len(plain)

    received: list[bytes] = []
    with trio.fail_after(60):
        async with connected(kind) as (server, client):
            ws = ClientSocket(server, KEY, 1 << 20)
            calls = spy_on_sendmsg(ws)

            async def many_sender() -> None:
                await ws.send_many(batch)
                for part in small_batches:
                    await ws.send_many(part)
                    await trio.lowlevel.checkpoint()

            async def plain_sender() -> None:
                for data in plain:
                    await ws.send({"type": "websocket.send", "bytes": data})
                    await trio.lowlevel.checkpoint()

            async def reader() -> None:
                buffer = bytearray()
                reads = 0
                while len(received) < total:
                    data = await client.receive_some(4096)
                    assert data, "the connection closed early"
                    buffer += data
                    received.extend(read_frames(buffer))
                    reads += 1
                    if reads % 32 == 0:
                        await trio.sleep(0.001)  # slow: the sender meets a full buffer
                assert buffer == b""

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                nursery.start_soon(many_sender)
                nursery.start_soon(plain_sender)

    assert len(received) == total
    # the paths under test were taken: full MAX_IOV calls, and partial writes resumed
    assert max(pieces for pieces, _, _ in calls) == MAX_IOV
    assert any(sent < size for _, size, sent in calls)
    from_many = [m for m in received if m.startswith(b"M")]
    from_plain = [m for m in received if m.startswith(b"P")]
    assert from_many == expected_many
    assert from_plain == plain
    # the two senders' messages went out interleaved, not one sender's all first
    kinds = [m[:1] for m in received]
    assert kinds.index(b"P") < len(kinds) - 1 - kinds[::-1].index(b"M")
    assert kinds.index(b"M") < len(kinds) - 1 - kinds[::-1].index(b"P")


async def test_a_message_of_more_than_max_iov_pieces_is_one_frame() -> None:
    pieces = [bytes([i % 256]) * (i % 5) for i in range(3 * MAX_IOV + 7)]
    async with connected("socketpair") as (server, client):
        ws = ClientSocket(server, KEY, 1 << 20)
        received: list[bytes] = []

        async def reader() -> None:
            buffer = bytearray()
            while len(received) < 2:
                data = await client.receive_some(1000)
                assert data
                buffer += data
                received.extend(read_frames(buffer))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await ws.send_many([pieces, [b"", b"", b"after"]])
    assert received == [b"".join(pieces), b"after"]
