"""The transport to the home node: one WebSocket, or anything else that carries binary
frames (:class:`Transport`; tests use an in-memory one).

:func:`websocket_connector` opens the node's client WebSocket (``ws``, or ``wss`` with the
system's trust store). Library exceptions (trio-websocket, OSError) become
:class:`~client.errors.NetworkError` here, once; ``client.net`` builds connections on top.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import trio
import trio_websocket

from client.errors import BadNodeUrl, NetworkError
from trust.limits import MAX_NODE_FRAME

CLIENT_PATH: Final = "/v1/client"
SEALED_PATH: Final = "/v1/sealed"
"""The anonymous connection: sealed sending only, never a login (issue 20)."""
MAX_FRAME: Final = MAX_NODE_FRAME
"""Largest frame accepted from the node (a Deliver batch may hold several envelopes)."""
CONNECT_TIMEOUT: Final = 15.0


class Transport(Protocol):
    """One bidirectional stream of binary frames."""

    async def send(self, data: bytes) -> None:
        """Send one frame; :class:`NetworkError` if the stream is gone."""
        ...

    async def receive(self) -> bytes:
        """The next frame; :class:`NetworkError` once the stream is closed."""
        ...


Connector = Callable[[], AbstractAsyncContextManager[Transport]]
"""Opens a fresh transport to the node for the duration of a ``with`` block."""


def client_url(node_url: str, path: str = CLIENT_PATH) -> str:
    """The WebSocket URL of a node's client endpoint (``http`` -> ``ws``, ``https`` -> ``wss``;
    ``path``: :data:`SEALED_PATH` for the anonymous one); :class:`BadNodeUrl` for anything
    else."""
    parts = urlsplit(node_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise BadNodeUrl(f"not a node URL: {node_url!r}: use http://HOST:PORT or https://HOST")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


class WebSocketTransport:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_message(data)
        except trio_websocket.ConnectionClosed:
            raise NetworkError("the connection to the node closed") from None

    async def receive(self) -> bytes:
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed:
            raise NetworkError("the connection to the node closed") from None
        if isinstance(message, str):
            raise NetworkError("the node sent a text frame")
        return message


def websocket_connector(node_url: str, path: str = CLIENT_PATH) -> Connector:
    """A :data:`Connector` to the node's client WebSocket at ``path`` (``ws``, or ``wss``
    with the system's trust store).

    The TCP (or TLS) stream is opened here and always closed here, around
    ``trio_websocket.wrap_client_stream``: ``open_websocket_url`` of trio-websocket 0.12
    leaves the stream open when the node refuses the upgrade (a draining node) or when the
    connection ended abnormally (a killed node), one leaked socket per such connection.
    Exceptions of the ``with`` body come out as themselves, never in an exception group;
    failures of the connection itself come out as :class:`NetworkError`."""
    url = client_url(node_url, path)
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)

    @asynccontextmanager
    async def connect() -> AsyncIterator[Transport]:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
                if secure:
                    context = ssl.create_default_context()
                    stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
                else:
                    stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise NetworkError(f"cannot reach the node at {url}: {type(exc).__name__}") from None
        try:
            async with _websocket(stream, parts.netloc, parts.path, url) as ws:
                yield WebSocketTransport(ws)
        finally:
            await trio.aclose_forcefully(stream)

    return connect


_CONNECTION_FAILURES: Final = (
    trio_websocket.HandshakeError,
    trio.BrokenResourceError,
    trio.TooSlowError,
    OSError,
)


@asynccontextmanager
async def _websocket(
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
    host: str,
    resource: str,
    url: str,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """The WebSocket over ``stream`` (which the caller closes), with its reader task."""
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(CONNECT_TIMEOUT):
                ws = await trio_websocket.wrap_client_stream(
                    nursery, stream, host, resource, max_message_size=MAX_FRAME
                )
            try:
                yield ws
            finally:
                with trio.move_on_after(2):  # no wait when cancelled: the stream is closed
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _unwrapped(group, url) from None
    except _CONNECTION_FAILURES as exc:
        raise NetworkError(f"the connection to {url} failed: {type(exc).__name__}") from None


def _unwrapped(group: BaseExceptionGroup[BaseException], url: str) -> BaseException:
    """The exception a nursery wrapped, as the caller expects it: a failure of the
    connection as :class:`NetworkError`, anything else as itself. Several exceptions stay
    a group unless they are all failures of the connection (or cancellations)."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if len(leaves) == 1:
        exc = leaves[0]
        if isinstance(exc, _CONNECTION_FAILURES):
            return NetworkError(f"the connection to {url} failed: {type(exc).__name__}")
        return exc
    # Several at once: the body's error beside the reader task's, or a cancellation that
    # met a failure. Trio cancellation is level-triggered, so calling them a network
    # failure loses nothing: the next checkpoint raises Cancelled again.
    others = [
        exc
        for exc in leaves
        if not isinstance(exc, (*_CONNECTION_FAILURES, NetworkError, trio.Cancelled))
    ]
    if not others:
        return next(
            (exc for exc in leaves if isinstance(exc, NetworkError)),
            NetworkError(f"the connection to {url} failed"),
        )
    return group
