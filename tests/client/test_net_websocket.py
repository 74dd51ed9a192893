"""client.net.websocket_connector over real loopback sockets: a node that refuses the
upgrade, one that dies mid-connection, and one that works. The stream is closed every time
(no socket left for the garbage collector), and the ``with`` body's own errors come out
as themselves, not in an exception group."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio_websocket

from client.errors import NetworkError, Refused
from client.websocket import websocket_connector

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def _serve(nursery: trio.Nursery, handler: Handler) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


def _unclosed_sockets(record: list[warnings.WarningMessage]) -> list[str]:
    gc.collect()
    return [
        str(w.message)
        for w in record
        if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)
    ]


async def _refuse(stream: trio.SocketStream) -> None:
    """A draining node: read the upgrade request, answer 503, close."""
    await stream.receive_some(65536)
    await stream.send_all(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    await stream.aclose()


async def test_a_refused_upgrade_is_a_network_error_and_leaks_nothing() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with trio.open_nursery() as nursery:
            port = await _serve(nursery, _refuse)
            connect = websocket_connector(f"http://127.0.0.1:{port}")
            for _ in range(5):
                with pytest.raises(NetworkError):
                    async with connect():
                        pytest.fail("a refused upgrade yielded a transport")
            nursery.cancel_scope.cancel()
        assert _unclosed_sockets(record) == []


async def test_nothing_listening_is_a_network_error() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(NetworkError):
            async with websocket_connector(f"http://127.0.0.1:{port}")():
                pytest.fail("connected to nothing")


async def test_a_node_that_dies_mid_connection_leaks_nothing() -> None:
    """The node accepts the upgrade, sends one frame and vanishes without a close frame
    (kill -9): the body sees NetworkError on its next read, and the stream is closed."""

    async def accept_then_die(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message(b"hello")
        await trio.aclose_forcefully(ws._stream)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, accept_then_die, "127.0.0.1", 0, None
            )
            connect = websocket_connector(f"http://127.0.0.1:{server.port}")
            for _ in range(5):
                async with connect() as transport:
                    assert await transport.receive() == b"hello"
                    with pytest.raises(NetworkError):
                        await transport.receive()
            nursery.cancel_scope.cancel()
        assert _unclosed_sockets(record) == []


async def test_frames_cross_and_the_body_error_is_itself() -> None:
    async def echo(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, echo, "127.0.0.1", 0, None)
        connect = websocket_connector(f"http://127.0.0.1:{server.port}/")
        async with connect() as transport:
            await transport.send(b"\x00frame")
            assert await transport.receive() == b"\x00frame"
        with pytest.raises(Refused):  # not an ExceptionGroup around it
            async with connect():
                raise Refused("auth.refused", "the body's own error")
        nursery.cancel_scope.cancel()
