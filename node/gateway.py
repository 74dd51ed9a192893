"""The node's listener: client WebSockets served directly on trio streams, everything else
by hypercorn.

    binds = await nursery.start(serve, app, hypercorn_config, trigger)

Each accepted connection's request head is read and parsed (h11). A well-formed WebSocket
upgrade of ``GET /v1/client`` or ``GET /v1/sealed`` (the anonymous connection of sealed
sending; ``Upgrade: websocket``, ``Sec-WebSocket-Version: 13``, a 16-byte key) is
answered here: the 101 response and then frames (``node.wsframes``)
straight on the socket, without hypercorn's per-message layers (its protocol objects,
queues, locks and timeouts). The application (``node.app.App``) sees the same ASGI
``websocket`` scope and messages as under hypercorn, so the client protocol is served by
the same code either way. Any other connection, with the bytes already read, goes to
hypercorn's own connection handler (``TCPServer``): HTTP routes, other or malformed
upgrades, keep-alive connections.

The application may take the binary messages already read after the one it received
(``READY_EXTENSION`` in the scope's ``extensions``) and answer them together, sending
the answers in one write (``SEND_MANY_EXTENSION``).

Writes of one WebSocket are coalesced: a frame sent while another task's write is in
progress is queued and leaves with the next write (one ``send`` for several frames); a
sender waits while more than ``HIGH_WATER`` bytes are queued.

Shutdown: ``trigger`` returns (after the application asked its WebSockets to close); the
listeners close; hypercorn's connections are told to finish (``WorkerContext``), and
whatever still runs ``graceful_timeout`` later is cancelled.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, cast

import h11
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr

from node import wsframes
from node.wsframes import Close, Failure, FrameReader, Message, Ping

log = logging.getLogger("sealrelay.node.gateway")

CLIENT_PATH: Final = b"/v1/client"
SEALED_PATH: Final = b"/v1/sealed"
CLIENT_PATHS: Final = frozenset({CLIENT_PATH, SEALED_PATH})
"""The WebSockets served here (the client protocol, logged in or anonymous)."""
READY_EXTENSION: Final = "sealrelay.receive_ready"
"""ASGI scope extension: a function giving the next binary message already read and
parsed (None if there is none), so the application can answer several together."""
SEND_MANY_EXTENSION: Final = "sealrelay.send_many"
"""ASGI scope extension: an async function sending several binary messages in one write,
each given as a list of pieces (written as they are: a body shared by many messages is
never copied)."""
MAX_HEAD: Final = 16 * 1024
HEAD_TIMEOUT: Final = 10.0
RECEIVE_BYTES: Final = 256 * 1024
"""Most bytes one read of a client WebSocket takes: several group uploads (one for 200
recipients is about 28 KiB with its tokens and a 16 KiB body) that arrived together are
then stored in one commit and pushed in one Deliver per recipient. The buffer lives only
for the read (an idle connection holds none)."""
HIGH_WATER: Final = 256 * 1024
MAX_IOV: Final = 512
"""Most pieces in one ``sendmsg`` (Linux allows 1024, ``IOV_MAX``)."""
LINGER_SECONDS: Final = 2.0
"""After closing for a broken rule (1002, 1007, 1009), how long the rest of what the client
sends is read and dropped before the socket closes: a client still writing (the rest of
a message too large) then sees the Close frame rather than a reset connection."""
ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]],
    Awaitable[None],
]


async def serve(
    app: ASGIApp,
    config: HypercornConfig,
    trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``config.bind``; ``task_status`` gets the bound URLs. Returns on shutdown."""
    sockets = config.create_sockets()
    listeners = []
    binds = []
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
        binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
    context = WorkerContext(None)
    handler = _Handler(app, config, context)
    async with trio.open_nursery() as connections:
        task_status.started(binds)
        try:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    partial(trio.serve_listeners, handler, listeners, handler_nursery=connections)
                )
                await trigger()
                accepting.cancel_scope.cancel()
        finally:
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout


class _Handler:
    """One accepted connection: a client WebSocket here, anything else to hypercorn."""

    def __init__(self, app: ASGIApp, config: HypercornConfig, context: WorkerContext) -> None:
        self.app = app
        asgi: Any = app  # hypercorn types the ASGI callable with its own TypedDicts
        self.wrapped = ASGIWrapper(asgi)  # what hypercorn's own handler takes
        self.config = config
        self.context = context
        self.state = ConnectionState({})

    async def __call__(self, stream: trio.SocketStream) -> None:
        try:
            head = await _read_head(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(stream)
            return
        if head is None:  # the client went or said nothing in time
            await trio.aclose_forcefully(stream)
            return
        upgrade = _client_upgrade(head)
        if upgrade is None:
            prefixed: Any = _Prefixed(stream, head)  # typed as an SSL stream there; not one
            await TCPServer(self.wrapped, self.config, self.context, self.state, prefixed).run()
            return
        key, rest, path, headers = upgrade
        ws = ClientSocket(stream, key, self.config.websocket_max_message_size)
        try:
            ws.feed(rest)
            scope = _scope(stream, path, headers)
            scope["extensions"][READY_EXTENSION] = ws.receive_ready
            scope["extensions"][SEND_MANY_EXTENSION] = ws.send_many
            await self.app(scope, ws.receive, ws.send)
            await ws.finish()
        except Exception as exc:  # as hypercorn does: one connection's failure stays its own
            log.exception("client websocket failed", extra={"error": type(exc).__name__})
        finally:
            await trio.aclose_forcefully(stream)


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """Bytes up to and past the end of the request head (or ``MAX_HEAD`` of them, for
    hypercorn to refuse); None if the client closed or timed out first."""
    data = bytearray()
    with trio.move_on_after(HEAD_TIMEOUT):
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
            chunk = await stream.receive_some(RECEIVE_BYTES)
            if not chunk:
                return None
            data += chunk
        return bytes(data)
    return None


def _client_upgrade(
    head: bytes,
) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]] | None:
    """(key, bytes after the head, path, headers) of a well-formed client WebSocket
    upgrade, else None."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(head)
    try:
        request = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(request, h11.Request) or request.method != b"GET":
        return None
    if request.target not in CLIENT_PATHS:
        return None
    headers = {name: value for name, value in request.headers}
    connection = {t.strip() for t in headers.get(b"connection", b"").lower().split(b",")}
    key = headers.get(b"sec-websocket-key", b"")
    if (
        headers.get(b"upgrade", b"").lower() != b"websocket"
        or b"upgrade" not in connection
        or headers.get(b"sec-websocket-version") != b"13"
        or not _valid_key(key)
    ):
        return None
    rest, _ = conn.trailing_data
    return key, bytes(rest), request.target.decode(), list(request.headers)


def _valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _scope(stream: trio.SocketStream, path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    peer = stream.socket.getpeername()
    local = stream.socket.getsockname()
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (peer[0], peer[1]),
        "server": (local[0], local[1]),
        "subprotocols": [],
        "extensions": {},
    }


class ClientSocket:
    """ASGI ``receive`` and ``send`` of one WebSocket, on the socket itself.

    ``receive`` is called by one task at a time (the connection's reader); ``send`` by
    any. Control frames are answered inside ``receive``: a Ping with a Pong, a Close with
    a Close (unless one was sent already), a broken rule with a Close of its code."""

    __slots__ = (
        "_accepted",
        "_broken",
        "_close_sent",
        "_connected",
        "_drained",
        "_events",
        "_failed",
        "_gone",
        "_key",
        "_queue",
        "_queued",
        "_reader",
        "_sendmsg",
        "_stream",
        "_writing",
    )

    def __init__(self, stream: trio.SocketStream, key: bytes, max_message: int) -> None:
        self._stream = stream
        self._key = key
        self._reader = FrameReader(max_message)
        self._events: deque[wsframes.Event] = deque()
        self._connected = False  # websocket.connect handed to the application
        self._accepted = False
        self._close_sent = False
        self._gone = False  # the peer's Close, EOF or a failure: no more messages
        self._failed = False  # closed for a broken rule: linger before closing the socket
        self._broken = False  # the socket failed: no more writes
        self._writing = False
        self._queue: list[bytes] = []
        self._queued = 0
        # trio declares sendmsg only where the platform has it (not to type checkers).
        self._sendmsg: Callable[[list[bytes | memoryview]], Awaitable[int]] = cast(
            Any, stream.socket
        ).sendmsg
        self._drained: trio.Event | None = None

    def feed(self, data: bytes) -> None:
        if data:
            self._events.extend(self._reader.feed(data))

    # --- receive --------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while True:
            while self._events:
                message = await self._event(self._events.popleft())
                if message is not None:
                    return message
            if self._gone or self._broken:
                return {"type": "websocket.disconnect", "code": 1006}
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                self._gone = True
            self.feed(data)

    async def _event(self, event: wsframes.Event) -> dict[str, Any] | None:
        if isinstance(event, Message):
            if self._gone:
                return None
            if event.text:
                return {"type": "websocket.receive", "text": event.data.decode()}
            return {"type": "websocket.receive", "bytes": event.data}
        if isinstance(event, Ping):
            await self._write(wsframes.frame(wsframes.OP_PONG, event.payload))
            return None
        self._gone = True
        if isinstance(event, Close):
            code = wsframes.CLOSE_NORMAL if event.code == wsframes.CLOSE_NO_STATUS else event.code
        else:
            assert isinstance(event, Failure)  # noqa: S101 (the four event kinds)
            code = event.code
            self._failed = True
        await self._send_close(code)
        return {"type": "websocket.disconnect", "code": code}

    def receive_ready(self) -> bytes | None:
        """The next binary message if it is already read and nothing comes before it."""
        events = self._events
        if events and not self._gone:
            event = events[0]
            if isinstance(event, Message) and not event.text:
                events.popleft()
                return event.data
        return None

    # --- send -----------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is not None:
                await self._write(wsframes.frame(wsframes.OP_BINARY, data))
            else:
                await self._write(wsframes.frame(wsframes.OP_TEXT, message["text"].encode()))
        elif kind == "websocket.accept":
            if not self._accepted:
                self._accepted = True
                await self._write(_switching(self._key))
        elif kind == "websocket.close":
            if not self._accepted:  # refused before the handshake completed (ASGI: 403)
                self._accepted = self._close_sent = True
                await self._write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            else:
                await self._send_close(int(message.get("code", wsframes.CLOSE_NORMAL)))

    async def send_many(self, messages: list[list[bytes]]) -> None:
        """Binary messages, in order, in one write; each given as pieces (their
        concatenation is the message), which are written as they are, never joined."""
        parts: list[bytes] = []
        for pieces in messages:
            parts.append(wsframes.header(wsframes.OP_BINARY, sum(map(len, pieces))))
            parts += pieces
        await self._write(parts)

    async def finish(self) -> None:
        """The application returned: close the WebSocket if it did not."""
        if not self._accepted:
            await self.send({"type": "websocket.close"})
        else:
            await self._send_close(wsframes.CLOSE_NORMAL)
        if self._failed and not self._broken:
            await self._linger()

    async def _linger(self) -> None:
        with trio.move_on_after(LINGER_SECONDS):
            try:
                while await self._stream.receive_some(RECEIVE_BYTES):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    async def _send_close(self, code: int) -> None:
        if not self._close_sent:
            self._close_sent = True
            await self._write(wsframes.close_frame(code))

    async def _write(self, data: bytes | list[bytes]) -> None:
        """Send ``data`` (bytes, or pieces to send one after another) after everything sent
        before it, batching concurrent writes."""
        if self._broken:
            return
        parts = [data] if isinstance(data, bytes) else data
        if self._writing:
            self._queue += parts
            self._queued += sum(map(len, parts))
            while self._queued > HIGH_WATER and self._writing and not self._broken:
                self._drained = self._drained or trio.Event()
                await self._drained.wait()
            return
        self._writing = True
        try:
            await self._send_parts(parts)
            while self._queue:
                parts, self._queue = self._queue, []
                self._queued = 0
                self._wake_senders()
                await self._send_parts(parts)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._broken = True
        except BaseException:  # cancelled mid-write: the stream is unusable
            self._broken = True
            raise
        finally:
            self._writing = False
            if self._broken:
                self._queue = []
                self._queued = 0
            self._wake_senders()

    async def _send_parts(self, parts: list[bytes]) -> None:
        """Write every byte of ``parts`` in order: ``sendmsg`` with the pieces as they are
        (a gathering write, ``MAX_IOV`` pieces at a time), no copy joining them."""
        sendmsg = self._sendmsg
        pending: list[bytes | memoryview] = list(parts)
        while pending:
            chunk = pending[:MAX_IOV]
            sent = await sendmsg(chunk)
            done = 0
            while done < len(chunk) and sent >= len(chunk[done]):
                sent -= len(chunk[done])
                done += 1
            del pending[:done]
            if sent:
                pending[0] = memoryview(pending[0])[sent:]

    def _wake_senders(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None


def _switching(key: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-accept: " + wsframes.accept_key(key) + b"\r\n\r\n"
    )


class _Prefixed(trio.abc.HalfCloseableStream):
    """``stream`` with ``prefix`` (bytes already read from it) in front, for hypercorn.

    Writes and the write-side close are serialised: hypercorn sends a response from the
    application's task but half-closes from its reading task when the client goes, and the
    two would otherwise meet on the socket (``trio.BusyResourceError``, which hypercorn does
    not expect). Serialised, a write after the close fails as broken or closed, which
    hypercorn takes as the client having gone."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self.transport = stream
        self.socket = stream.socket  # hypercorn reads the addresses from it
        self._prefix = prefix
        self._sending = trio.Lock()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.transport.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._sending:
            await self.transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        async with self._sending:
            await self.transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        async with self._sending:
            await self.transport.send_eof()

    async def aclose(self) -> None:
        await self.transport.aclose()
