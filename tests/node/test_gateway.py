"""node.gateway: client WebSockets served directly, everything else by hypercorn; run_node
in-process on 127.0.0.1 port 0 with real sockets."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from node import wsframes
from node.config import Config
from node.server import NodeHandle, run_node
from tests.node.harness import Device, token_for
from wire import decode, encode
from wire.relay import Deliver, Drained, Hello, Ok, Ping, Pong, Send, SendBatch, SentBatch
from wire.relay import SetDeliveryToken as SetToken

DOMAIN = "relay.test"
MAX_FRAME = 64 * 1024


@pytest.fixture(params=["direct", "hypercorn"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NodeHandle]:
    config = Config(
        domain=DOMAIN,
        data_dir=str(tmp_path / "data"),
        listen_port=0,
        store="memory",
        suite="xwing",
        max_frame_bytes=MAX_FRAME,
        max_envelope_bytes=16 * 1024,
        shutdown_timeout=2.0,
        client_websocket=request.param,
    )
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        yield handle
        handle.shutdown()


def ws_url(handle: NodeHandle) -> str:
    return handle.url.replace("http://", "ws://") + "/v1/client"


async def test_send_batch_and_deliver_over_either_listener(node: NodeHandle) -> None:
    alice, bob = Device.create("alice"), Device.create("bob")
    async with open_websocket_url(ws_url(node)) as a_ws, open_websocket_url(ws_url(node)) as b_ws:
        for ws, device in ((a_ws, alice), (b_ws, bob)):
            hello = decode(await ws.get_message(), Hello)  # type: ignore[arg-type]
            code = await node.relay.add_invite(device.name, 600)
            await ws.send_message(encode(device.register_frame(hello, code)))
            reply = decode(await ws.get_message())  # type: ignore[arg-type]
            device.address, device.mailbox = reply.address, reply.mailbox  # type: ignore[attr-defined]
            assert decode(await ws.get_message()) == Drained(0)  # type: ignore[arg-type]
        token, verifier = token_for(bob)
        await b_ws.send_message(encode(SetToken(2, verifier)))
        assert decode(await b_ws.get_message()) == Ok(2)  # type: ignore[arg-type]
        sends = tuple(Send(n, bob.mailbox, bytes([n]) * 16, token, 60, b"%d" % n) for n in (1, 2))
        await a_ws.send_message(encode(SendBatch(3, sends)))
        reply = decode(await a_ws.get_message())  # type: ignore[arg-type]
        assert isinstance(reply, SentBatch)
        assert [r.id for r in reply.results] == [1, 2]
        got: list[bytes] = []
        with trio.fail_after(5):
            while len(got) < 2:
                push = decode(await b_ws.get_message())  # type: ignore[arg-type]
                assert isinstance(push, Deliver)
                got += [e.body for e in push.envelopes]
        assert got == [b"1", b"2"]
        await a_ws.ping(b"are you there")  # answered with a pong, or this hangs
        await a_ws.send_message(encode(Ping(4)))
        assert isinstance(decode(await a_ws.get_message()), Pong)  # type: ignore[arg-type]


async def test_sealed_sending_over_either_listener_needs_no_login(node: NodeHandle) -> None:
    """``/v1/sealed`` (issue 20): Hello, then sealed sends authorised by the token alone."""
    bob = Device.create("bob")
    sealed_url = node.url.replace("http://", "ws://") + "/v1/sealed"
    async with open_websocket_url(ws_url(node)) as b_ws, open_websocket_url(sealed_url) as s_ws:
        hello = decode(await b_ws.get_message(), Hello)  # type: ignore[arg-type]
        code = await node.relay.add_invite(bob.name, 600)
        await b_ws.send_message(encode(bob.register_frame(hello, code)))
        reply = decode(await b_ws.get_message())  # type: ignore[arg-type]
        bob.address, bob.mailbox = reply.address, reply.mailbox  # type: ignore[attr-defined]
        assert decode(await b_ws.get_message()) == Drained(0)  # type: ignore[arg-type]
        token, verifier = token_for(bob)
        await b_ws.send_message(encode(SetToken(2, verifier)))
        assert decode(await b_ws.get_message()) == Ok(2)  # type: ignore[arg-type]
        assert isinstance(decode(await s_ws.get_message()), Hello)  # type: ignore[arg-type]
        sends = tuple(Send(n, bob.mailbox, bytes([n]) * 16, token, 60, b"%d" % n) for n in (1, 2))
        await s_ws.send_message(encode(SendBatch(3, sends)))
        reply = decode(await s_ws.get_message())  # type: ignore[arg-type]
        assert isinstance(reply, SentBatch)
        assert [r.id for r in reply.results] == [1, 2]
        got: list[tuple[bytes, str | None]] = []
        with trio.fail_after(5):
            while len(got) < 2:
                push = decode(await b_ws.get_message())  # type: ignore[arg-type]
                assert isinstance(push, Deliver)
                got += [(e.body, e.sender) for e in push.envelopes]
        assert got == [(b"1", None), (b"2", None)]


async def test_other_paths_and_http_still_work(node: NodeHandle) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:  # one keep-alive connection
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/nothing")).status_code == 404
    async with await trio.open_tcp_stream("127.0.0.1", node.port) as stream:
        await stream.send_all(upgrade(b"/v1/other")[0])  # hypercorn answers it (ASGI: 403)
        raw = Raw(stream)
        assert (await raw.head()).startswith(b"HTTP/1.1 403 ")


# --- the direct listener, byte by byte -------------------------------------------------------

MASK = b"\x01\x02\x03\x04"


def client_frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    first = (0x80 if final else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    else:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + MASK + wsframes.unmask(payload, MASK)


class Raw:
    """A WebSocket client on a bare TCP stream: the node's frames are parsed by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def fill(self, size: int) -> None:
        with trio.fail_after(5):
            while len(self.buffer) < size:
                chunk = await self.stream.receive_some()
                assert chunk, "the node closed the connection"
                self.buffer += chunk

    async def head(self) -> bytes:
        with trio.fail_after(5):
            while b"\r\n\r\n" not in self.buffer:
                await self.fill(len(self.buffer) + 1)
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        return head

    async def frame(self) -> tuple[int, bytes]:
        await self.fill(2)
        first, size = self.buffer[0], self.buffer[1]
        assert not size & 0x80, "server frames are never masked"
        assert first & 0x80, "the server never fragments"
        header = 2
        if size == 126:
            await self.fill(4)
            size, header = int.from_bytes(self.buffer[2:4], "big"), 4
        await self.fill(header + size)
        payload = bytes(self.buffer[header : header + size])
        del self.buffer[: header + size]
        return first & 0x0F, payload

    async def closed(self) -> bool:
        with trio.fail_after(5):
            while chunk := await self.stream.receive_some():
                self.buffer += chunk
        return True


def upgrade(path: bytes = b"/v1/client") -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    head = (
        b"GET " + path + b" HTTP/1.1\r\nHost: relay.test\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    return head, key


@pytest.fixture
async def direct(tmp_path: Path) -> AsyncIterator[NodeHandle]:
    config = Config(
        domain=DOMAIN,
        data_dir=str(tmp_path / "data"),
        listen_port=0,
        store="memory",
        suite="xwing",
        max_frame_bytes=MAX_FRAME,
        max_envelope_bytes=16 * 1024,
        shutdown_timeout=2.0,
    )
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        yield handle
        handle.shutdown()


async def connect(handle: NodeHandle, first: bytes = b"") -> tuple[Raw, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", handle.port)
    head, key = upgrade()
    await stream.send_all(head + first)  # frames may follow the head in the same segment
    raw = Raw(stream)
    return raw, key


async def test_the_handshake_then_fragments_pings_and_a_close(direct: NodeHandle) -> None:
    ping = client_frame(wsframes.OP_BINARY, encode(Ping(7)))
    raw, key = await connect(direct, ping)
    async with raw.stream:
        head = await raw.head()
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"\r\nsec-websocket-accept: " + wsframes.accept_key(key) in head
        opcode, payload = await raw.frame()
        assert (opcode, type(decode(payload))) == (wsframes.OP_BINARY, Hello)
        pong = decode((await raw.frame())[1])  # the Ping sent right after the head
        assert isinstance(pong, Pong)
        assert pong.id == 7
        data = encode(Ping(8))
        await raw.stream.send_all(
            client_frame(wsframes.OP_BINARY, data[:3], final=False)
            + client_frame(wsframes.OP_PING, b"hi")
            + client_frame(wsframes.OP_CONTINUATION, data[3:])
        )
        assert await raw.frame() == (wsframes.OP_PONG, b"hi")
        opcode, payload = await raw.frame()
        assert isinstance(decode(payload), Pong)
        assert decode(payload).id == 8  # type: ignore[attr-defined]
        await raw.stream.send_all(client_frame(wsframes.OP_CLOSE, (1000).to_bytes(2, "big")))
        assert await raw.frame() == (wsframes.OP_CLOSE, (1000).to_bytes(2, "big"))
        assert await raw.closed()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (bytes((0x82, 0x01)) + b"x", 1002),  # not masked
        (client_frame(wsframes.OP_TEXT, b"\xff"), 1007),
        (bytes((0x82, 0x80 | 127)) + (1 << 32).to_bytes(8, "big") + MASK, 1009),
    ],
)
async def test_a_broken_rule_closes_with_its_code(
    direct: NodeHandle, frame: bytes, code: int
) -> None:
    raw, _ = await connect(direct)
    async with raw.stream:
        await raw.head()
        assert isinstance(decode((await raw.frame())[1]), Hello)
        await raw.stream.send_all(frame)
        assert await raw.frame() == (wsframes.OP_CLOSE, code.to_bytes(2, "big"))
        await raw.stream.send_eof()
        assert await raw.closed()
    # and the node serves the next client
    async with open_websocket_url(ws_url(direct)) as ws:
        assert isinstance(decode(await ws.get_message()), Hello)  # type: ignore[arg-type]


async def test_a_server_close_waits_for_the_clients_close(direct: NodeHandle) -> None:
    async with open_websocket_url(ws_url(direct)) as ws:
        assert isinstance(decode(await ws.get_message()), Hello)  # type: ignore[arg-type]
        direct.shutdown()
        with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason.code == 1001
        await ws._stream.aclose()  # as in test_server: trio-websocket leaves it open
