"""The client's network shell: one connection to the home node, and reconnection.

Layers, each small::

    Transport        a Protocol: send / receive one binary frame (``client.websocket``:
                     the WebSocket to the node, or in memory)
    Connection       request/response matching by id over one transport; Deliver and
                     Drained pushes go to a channel; a broken transport fails every waiter;
                     ``send_only`` for fire-and-forget frames (``Ack`` with id 0); call
                     media datagrams (binary messages starting 0x11) and the meeting
                     notices (``MeetingLayer``, ``MeetingKeyframe``) go to its ``media``
                     sink, ``LegEnded`` pushes to ``on_leg_ended`` (``client.calls.legs``)
    handshake()      Hello, then Register or Auth signed over AuthPayload (CTX_DEVICE_AUTH;
                     the requests are built in ``client.login``)
    Link             keeps a Connection up: reconnects with jittered, capped exponential
                     backoff and runs ``on_connect`` (flush the outbox, ...) on each one;
                     without a login it is the *anonymous* link (``/v1/sealed``, issue 20)
                     that carries every sealed envelope, opened when first needed
    Backoff          the pure delay schedule

Library exceptions (trio-websocket, OSError) become :class:`~client.errors.NetworkError`
in ``client.websocket``, once; an ``Error`` frame becomes :class:`~client.errors.Refused`
with the node's code.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

import trio

from client.errors import ClientError, NetworkError, Refused, ServerKeyError

# The login requests live in client.login; their names stay importable from here.
from client.login import AuthLogin as AuthLogin
from client.login import Login as Login
from client.login import RegisterLogin as RegisterLogin
from client.login import auth_signature as auth_signature
from client.login import read_hello as read_hello

# The transport's names stay importable from here, where callers have found them.
from client.websocket import MAX_FRAME as MAX_FRAME
from client.websocket import Connector as Connector
from client.websocket import Transport as Transport
from client.websocket import client_url as client_url
from client.websocket import websocket_connector as websocket_connector
from trust.errors import UNREADABLE
from wire import WireError, decode, encode
from wire.relay import (
    PUSHES,
    RESPONSES,
    Authenticated,
    Deliver,
    Drained,
    Error,
    Hello,
    IntroduceMany,
    LegEnded,
    MeetingKeyframe,
    MeetingLayer,
    Registered,
    SendBatch,
    SetGroupToken,
    is_media_message,
)

PUSH_BUFFER: Final = 64
"""Pushes a connection holds for a slow consumer before it stops reading the socket (it
keeps reading past this while a request waits for its response, so that response is
never stuck behind pushes nobody takes)."""

log = logging.getLogger(__name__)

Push = Deliver | Drained


class MediaSink(Protocol):
    """Takes the call media datagrams a connection reads (``client.calls.ws_media``):
    ``deliver`` one (never blocking), a meeting leg's ``notice``, ``close`` when the
    connection closed."""

    def deliver(self, data: bytes) -> None: ...

    def notice(self, push: MeetingLayer | MeetingKeyframe) -> None: ...

    def close(self) -> None: ...


def _ignore_leg(_: LegEnded) -> None:
    """The default ``on_leg_ended``."""


# --- backoff ----------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Exponential backoff with equal jitter: the n-th delay lies in ``[d/2, d]`` where
    ``d = min(cap, base * 2**n)``. ``reset`` after a connection that worked."""

    base: float = 0.25
    cap: float = 30.0
    rand: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return ceiling / 2 + self.rand() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


# --- one connection ---------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("event", "failure", "response")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.response: object = None
        self.failure: Exception | None = None


class Connection:
    """Requests and responses matched by id over one transport (after the handshake).

    :meth:`run_reader` must run in a task for responses to arrive; when it ends (the
    transport broke) every pending and later :meth:`request` raises :class:`NetworkError`.

    Pushes (Deliver, Drained) are handed to the push channel in order by a forwarding task;
    the reader only stops reading (backpressure on the node) while :data:`PUSH_BUFFER`
    pushes wait for the consumer *and* no request waits for a response. So a response never
    hangs behind pushes, even when the push consumer itself waits for a request.
    """

    def __init__(
        self, transport: Transport, hello: Hello, pushes: trio.MemorySendChannel[Push]
    ) -> None:
        self.hello = hello
        self._transport = transport
        self._pushes = pushes
        self._backlog: deque[Push] = deque()
        self._queued = trio.Event()
        """Set when a push was put in the backlog."""
        self._room = trio.Event()
        """Set when the backlog shrank or a request started waiting."""
        self._next_id = 1
        self._waiters: dict[int, _Waiter] = {}
        self._batches: set[int] = set()  # ids of pending requests an old node cannot read
        self._closed = False
        self.media: MediaSink | None = None
        """Where call media datagrams read go (dropped while None)."""
        self.on_leg_ended: Callable[[LegEnded], object] = _ignore_leg

    @property
    def closed(self) -> bool:
        return self._closed

    async def request(self, req: Any) -> Any:
        """Send ``req`` (its ``id`` is replaced) and return the response with that id;
        :class:`Refused` for an ``Error`` frame."""
        if self._closed:
            raise NetworkError("the connection to the node closed")
        rid, self._next_id = self._next_id, self._next_id % 0xFFFF_FFFF + 1
        waiter = self._waiters[rid] = _Waiter()
        if isinstance(req, SendBatch | IntroduceMany | SetGroupToken):
            self._batches.add(rid)
        self._room.set()  # the reader must keep reading until the response came
        try:
            await self._transport.send(encode(replace(req, id=rid)))
            await waiter.event.wait()
        finally:
            self._waiters.pop(rid, None)
            self._batches.discard(rid)
        if waiter.failure is not None:
            raise waiter.failure
        return waiter.response

    async def send_only(self, frame: Any) -> None:
        """Send ``frame`` as it is (id 0: the node answers nothing, or an ``Error`` with id
        0 that is logged and ignored) without waiting for anything."""
        if self._closed:
            raise NetworkError("the connection to the node closed")
        await self._transport.send(encode(frame))

    async def send_binary(self, data: bytes) -> None:
        """Send ``data`` as one binary message as it is (a call media datagram)."""
        if self._closed:
            raise NetworkError("the connection to the node closed")
        await self._transport.send(data)

    async def run_reader(self) -> None:
        """Dispatch frames until the transport fails; then fail every waiter."""
        error: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_pushes)
                try:
                    while True:
                        await self._wait_for_room()
                        frame = await self._read()
                        if frame is not None:
                            self._dispatch(frame)
                except Exception as exc:  # raised as itself, not in an exception group
                    error = exc
                nursery.cancel_scope.cancel()
            if error is not None:
                raise error
        finally:
            self._closed = True
            if self.media is not None:
                self.media.close()
            for waiter in self._waiters.values():
                waiter.failure = NetworkError("the connection to the node closed")
                waiter.event.set()

    async def _wait_for_room(self) -> None:
        while len(self._backlog) >= PUSH_BUFFER and not self._waiters:
            self._room = trio.Event()
            await self._room.wait()

    async def _forward_pushes(self) -> None:
        while True:
            while not self._backlog:
                self._queued = trio.Event()
                await self._queued.wait()
            await self._pushes.send(self._backlog[0])
            self._backlog.popleft()
            self._room.set()

    async def _read(self) -> object | None:
        """The next frame; None for a media datagram (handed to :attr:`media`)."""
        data = await self._transport.receive()
        if is_media_message(data):
            if self.media is not None:
                self.media.deliver(data)
            return None
        try:
            return decode(data, RESPONSES + PUSHES, max_size=MAX_FRAME)
        except WireError:
            raise NetworkError("the node sent a frame that does not decode") from None

    def _queue_push(self, push: Push) -> None:
        if not self._backlog:
            try:
                self._pushes.send_nowait(push)
            except trio.WouldBlock:
                pass
            else:
                return
        self._backlog.append(push)
        self._queued.set()

    def _dispatch(self, frame: object) -> None:
        if isinstance(frame, Deliver | Drained):
            self._queue_push(frame)
            return
        if isinstance(frame, Hello):
            return
        if isinstance(frame, LegEnded):
            self.on_leg_ended(frame)
            return
        if isinstance(frame, MeetingLayer | MeetingKeyframe):
            if self.media is not None:
                self.media.notice(frame)
            return
        rid = getattr(frame, "id", 0)
        waiter = self._waiters.get(rid)
        if waiter is None:  # a late answer to a request given up, or Error(id=0)
            if isinstance(frame, Error):
                log.warning("the node refused a frame: %s", frame.code)
                self._fail_batches(frame)
            return
        if isinstance(frame, Error):
            waiter.failure = Refused(frame.code, frame.message, frame.retry_after)
        else:
            waiter.response = frame
        waiter.event.set()

    def _fail_batches(self, error: Error) -> None:
        """An unreadable-frame error while SendBatch requests wait: the node does not know
        the frame (this client sends nothing else it cannot read), so they fail with it."""
        if error.id != 0 or error.code not in UNREADABLE:
            return
        for rid in list(self._batches):
            waiter = self._waiters[rid]
            waiter.failure = Refused(error.code, error.message, error.retry_after)
            waiter.event.set()
        self._batches.clear()


@asynccontextmanager
async def serving(conn: Connection) -> AsyncIterator[Connection]:
    """Run ``conn``'s reader for the duration of the block.

    An exception of the block comes out as itself (not in an exception group); if the
    transport breaks, pending requests raise :class:`NetworkError`.
    """
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_quietly, conn)
        try:
            yield conn
        except Exception as exc:
            error = exc
        nursery.cancel_scope.cancel()
    if error is not None:
        raise error


async def _read_quietly(conn: Connection) -> None:
    with contextlib.suppress(NetworkError):
        await conn.run_reader()


# --- handshake --------------------------------------------------------------------------------


async def handshake(
    conn: Connection, login: Login, expect_server: str | None
) -> Registered | Authenticated:
    """Register or authenticate on ``conn`` (its reader must be running)."""
    if expect_server is not None and conn.hello.server != expect_server:
        raise ServerKeyError(f"the node serves {conn.hello.server!r}, not {expect_server!r}")
    response = await conn.request(login.request(conn.hello))
    if not isinstance(response, Registered | Authenticated):
        raise NetworkError("unexpected answer to the login")
    return response


# --- reconnecting link ------------------------------------------------------------------------

OnConnect = Callable[[Connection, Registered | Authenticated], Awaitable[None]]


class Link:
    """Keeps one authenticated connection to the node, reconnecting after failures.

    ``run`` loops until cancelled: connect, read Hello, log in, start ``on_connect`` (in a
    task, so responses keep flowing), then wait for the connection to break and back off.
    A :class:`Refused` login (a spent code, a failed signature) is not retried: ``run``
    raises it. :meth:`current` waits for a live connection.

    With ``login`` None the link is anonymous (its connector opens ``/v1/sealed``): it
    never logs in, runs no ``on_connect`` and is pushed nothing; the node only checks the
    server it serves. It connects only while it is wanted: when :meth:`current` is
    awaited (a client that sends nothing opens no anonymous connection), and again after
    a break only once something waits for it (the node closes an idle one).
    """

    def __init__(
        self,
        connector: Connector,
        login: Login | None,
        on_connect: OnConnect | None,
        *,
        expect_server: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._connector = connector
        self._login = login
        self._on_connect = on_connect
        self._expect_server = expect_server
        self.backoff = backoff or Backoff()
        self._conn: Connection | None = None
        self._fatal: ClientError | None = None
        self._task_status: trio.TaskStatus[None] | None = None
        self._up = trio.Event()
        self._wanted = trio.Event()
        self._waiting = 0  # tasks in current() waiting for a connection
        if login is not None:
            self._wanted.set()
        send, self.pushes = trio.open_memory_channel[Push](PUSH_BUFFER)
        self._push_send = send
        self.connections = 0
        self.on_leg_ended: Callable[[LegEnded], object] = _ignore_leg
        """Told of every ``LegEnded`` push, on any connection."""

    @property
    def anonymous(self) -> bool:
        return self._login is None

    async def current(self) -> Connection:
        """The live connection, waiting for one if needed."""
        while self._conn is None or self._conn.closed:
            self._waiting += 1
            self._wanted.set()
            try:
                await self._up.wait()
            finally:
                self._waiting -= 1
        return self._conn

    async def request(self, req: Any) -> Any:
        return await (await self.current()).request(req)

    async def send_only(self, frame: Any) -> None:
        """:meth:`Connection.send_only` on the live connection."""
        await (await self.current()).send_only(frame)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._task_status = task_status
        await self._wanted.wait()
        while True:
            fatal: ClientError | None = None
            try:
                async with self._connector() as transport:
                    fatal = await self._session(transport)
            except* NetworkError:
                pass  # could not connect, or the connection broke: back off and retry
            if fatal is not None:
                raise fatal
            await self._until_wanted()
            await trio.sleep(self.backoff.next_delay())

    async def _until_wanted(self) -> None:
        """On the anonymous link, wait after a break until something needs a connection."""
        if self._login is None and not self._waiting:
            self._wanted = trio.Event()
            await self._wanted.wait()

    async def _session(self, transport: Transport) -> ClientError | None:
        """One connection, until it breaks; returns the error that ends :meth:`run` (a
        refused login, a fatal error of ``on_connect``), ``None`` to reconnect. Errors are
        returned, not raised, so a connector's nursery cannot wrap them in a group."""
        try:
            hello = await read_hello(transport)
        except NetworkError:
            return None
        conn = Connection(transport, hello, self._push_send)
        conn.on_leg_ended = lambda frame: self.on_leg_ended(frame)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_then_cancel, conn, nursery.cancel_scope)
            try:
                response = await self._log_in(conn)
            except NetworkError:
                nursery.cancel_scope.cancel()
            except ClientError as exc:  # refused, or the wrong server: retrying won't help
                self._fatal = exc
                nursery.cancel_scope.cancel()
            else:
                self._connected(conn)
                if response is not None:
                    scope = nursery.cancel_scope
                    nursery.start_soon(self._guarded_on_connect, conn, response, scope)
        return self._fatal

    async def _log_in(self, conn: Connection) -> Registered | Authenticated | None:
        """The login's answer; None on the anonymous link, which only checks the server."""
        if self._login is not None:
            return await handshake(conn, self._login, self._expect_server)
        if self._expect_server is not None and conn.hello.server != self._expect_server:
            raise ServerKeyError(
                f"the node serves {conn.hello.server!r}, not {self._expect_server!r}"
            )
        return None

    def _connected(self, conn: Connection) -> None:
        self.backoff.reset()
        self.connections += 1
        self._conn = conn
        self._up.set()
        self._up = trio.Event()
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None

    async def _guarded_on_connect(
        self, conn: Connection, response: Registered | Authenticated, scope: trio.CancelScope
    ) -> None:
        """``on_connect``; a NetworkError in it means the connection is gone: reconnect.
        Any other client error ends :meth:`run` with it."""
        try:
            if self._on_connect is not None:
                await self._on_connect(conn, response)
        except NetworkError:
            scope.cancel()
        except ClientError as exc:
            self._fatal = exc
            scope.cancel()

    @staticmethod
    async def _read_then_cancel(conn: Connection, scope: trio.CancelScope) -> None:
        try:
            await conn.run_reader()
        except NetworkError:
            pass
        finally:
            scope.cancel()
