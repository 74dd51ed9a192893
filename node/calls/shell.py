"""The trio shell of the node's call relay over QUIC (DESIGN section 9; issue 17, "the
media path"): a UDP port where clients bind media connections to their legs, and the task
that ends expired legs.

    service = CallService(core, keys.quic)        # core: a node.calls.CallRelay
    address = await nursery.start(service.serve, "0.0.0.0", 4433)

For each QUIC connection the :class:`~transport.QuicServer` accepts, one task:

1. reads the first control message, a ``MediaBind`` (``wire.media_control``), within
   ``bind_timeout`` seconds, and binds the connection to its leg
   (:meth:`~node.calls.core.CallRelay.bind`); it answers ``MediaBound`` with the sender id,
   or ``MediaRefused`` with the stable code (``call.no_leg``, ``call.bad_secret``,
   ``call.expired``) and closes the connection. A control message that does not decode
   closes that connection with ``CLOSE_MALFORMED_CONTROL``; the server goes on.
2. then takes the connection's datagrams a batch at a time
   (``MediaTransport.receive_datagram_batch``), asks the core for each one
   (:meth:`~node.calls.core.CallRelay.on_datagram`; drops are counted there), and sends
   the forwarded ones grouped by destination connection with one ``send_datagrams`` each:
   no task and no checkpoint per datagram.
3. when the connection goes, unbinds it (:meth:`~node.calls.core.CallRelay.unbind`): the
   leg waits for a rebind until the allocation timeout.

In cluster mode a bind of a leg this replica does not hold goes to :attr:`CallService.elsewhere`
(``node.calls.relayed``), which refuses it from the leg's stored record or relays it to the
replica that holds it; that replica serves the relayed connection through
:meth:`CallService.serve_channel` as one it accepted.

A sweep task calls :meth:`~node.calls.core.CallRelay.expire` every ``sweep_interval``
seconds and closes the connections of the legs that ended (``CLOSE_LEG_ENDED``); every
:class:`~node.calls.Ended` is also handed to ``on_ended`` (the node tells owners, the
``CallLegs`` port and peer nodes). Legs the node ends otherwise (a hang-up) go through
:meth:`CallService.close_ended`.

Time: the core takes Unix ms from the injected ``now_ms``. Further control messages after
the bind are not read; the transport closes a connection whose unread control messages
pile up (``transport.quic``, ``APP_CONTROL_BACKLOG``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from node.calls.core import CallRelay
from node.calls.events import Ended, Forward
from node.calls.legs import Bound, Conn
from node.errors import NodeError
from transport import (
    DEFAULT_SETTINGS,
    MediaChannel,
    MediaTransport,
    PinnedKey,
    QuicChannel,
    QuicIdentity,
    QuicServer,
    QuicSettings,
    TransportError,
)
from transport.udp import Address
from wire import WireError, encode
from wire.media_control import (
    CLOSE_BIND_REFUSED,
    CLOSE_BIND_TIMEOUT,
    CLOSE_LEG_ENDED,
    CLOSE_MALFORMED_CONTROL,
    CLOSE_REBOUND,
    MediaBound,
    MediaRefused,
    decode_bind,
)
from wire.media_link import decode_hello

BIND_TIMEOUT: Final = 5.0
"""Seconds a new connection has to send its ``MediaBind``."""
SWEEP_INTERVAL: Final = 1.0
"""Seconds between two :meth:`~node.calls.core.CallRelay.expire` sweeps."""
FORWARD_BATCH: Final = 64
"""Most datagrams of one connection handled per wake-up."""


def wall_clock_ms() -> int:
    """Unix time in milliseconds: the core's clock in production."""
    return time.time_ns() // 1_000_000


def _ignore(_: Ended) -> None:
    """The default ``on_ended``."""


class LinkAcceptor(Protocol):
    """Who takes the connections whose first control message is a node-to-node link's
    ``LinkHello`` (``wire.media_link``), and hears of every leg that ended
    (``node.calls.links.MediaLinks``)."""

    async def serve_inbound(self, channel: QuicChannel, first: bytes) -> None:
        """Authenticate and serve the link that opened with ``first``; return when it ends."""

    def legs_ended(self, ended: Sequence[Ended]) -> None:
        """Tell the peer nodes of the remote legs among ``ended``."""


class MeetingRouter(Protocol):
    """Who takes the QUIC connections whose ``MediaBind`` names a meeting leg rather than
    a call leg (``node.sfu.shell.MeetingService``)."""

    def owns(self, leg_id: bytes) -> bool:
        """Whether ``leg_id`` is a meeting leg."""

    async def serve(self, channel: MediaChannel, first: bytes) -> None:
        """Bind and serve the connection whose first control message is ``first``."""


class BindElsewhere(Protocol):
    """Who takes the QUIC connections whose ``MediaBind`` names a leg this replica does not
    hold (cluster mode: ``node.calls.relayed.BindRelays`` hands them on to the leg's
    replica, or refuses them as a local bind would)."""

    async def serve(self, channel: MediaChannel, first: bytes) -> None:
        """Relay (or refuse) the connection whose first control message is ``first``."""


def _unmeasured(_: float) -> None:
    """The default ``observe_forward``."""


@dataclass
class ShellCounters:
    """What the shell did with connections and forwarded datagrams (mutable; the core
    counts forwards and drops)."""

    connections: int = 0
    bound: int = 0
    refused: int = 0
    malformed_control: int = 0
    bind_timeouts: int = 0
    send_failures: int = 0
    """Forwarded datagrams that could not be sent: the destination had closed, or (a
    WebSocket, ``node.calls.wsmedia``) was too far behind."""


@dataclass(frozen=True)
class ShellStats:
    """A snapshot of :class:`ShellCounters` (the same fields)."""

    connections: int
    bound: int
    refused: int
    malformed_control: int
    bind_timeouts: int
    send_failures: int


class CallService:
    """A :class:`~node.calls.core.CallRelay` served over QUIC on one UDP socket."""

    def __init__(
        self,
        core: CallRelay,
        identity: QuicIdentity,
        *,
        now_ms: Callable[[], int] = wall_clock_ms,
        settings: QuicSettings = DEFAULT_SETTINGS,
        bind_timeout: float = BIND_TIMEOUT,
        sweep_interval: float = SWEEP_INTERVAL,
        on_ended: Callable[[Ended], object] = _ignore,
    ) -> None:
        self.core = core
        self.counters = ShellCounters()
        self.pin: PinnedKey = identity.pin
        self._server = QuicServer(identity, settings=settings)
        self._now = now_ms
        self._bind_timeout = bind_timeout
        self._sweep_interval = sweep_interval
        self.on_ended: Callable[[Ended], object] = on_ended
        """Told of every leg the sweep ends (the node's ``ClientLegs`` sets it)."""
        self.observe_forward: Callable[[float], object] = _unmeasured
        """Told the seconds each :meth:`forward` batch took (``/metrics``)."""
        self._by_leg: dict[bytes, MediaChannel] = {}
        self._live: dict[Conn, MediaTransport] = {}
        self._links: LinkAcceptor | None = None
        self._meetings: MeetingRouter | None = None
        self.elsewhere: BindElsewhere | None = None
        """Cluster mode: binds of legs held by another replica go there (``node.server``)."""

    def accept_links(self, links: LinkAcceptor) -> None:
        """Hand connections that open with a ``LinkHello`` to ``links`` (without it they
        are closed as malformed), and tell it of every leg that ends."""
        self._links = links

    def route_meetings(self, meetings: MeetingRouter) -> None:
        """Hand connections whose ``MediaBind`` names a meeting leg to ``meetings``."""
        self._meetings = meetings

    @property
    def server(self) -> QuicServer:
        """The QUIC endpoint (its ``stats()`` are the transport's counters)."""
        return self._server

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on UDP ``(host, port)``; ``task_status`` gets the bound address. Serves
        until cancelled."""
        async with trio.open_nursery() as nursery:
            address = await nursery.start(self._server.serve, host, port)
            nursery.start_soon(self._accept, nursery)
            nursery.start_soon(self._sweep)
            task_status.started(address)

    def attach(self, conn: Conn, transport: MediaTransport) -> None:
        """Make ``transport`` the destination of the datagrams the core forwards to
        ``conn`` (a bound QUIC connection is attached by the shell itself; a WebSocket
        fallback or a node-to-node link is attached by whoever binds it in the core)."""
        self._live[conn] = transport

    def detach(self, conn: Conn) -> None:
        """``conn`` is gone: datagrams the core still forwards to it are counted as
        ``send_failures``."""
        self._live.pop(conn, None)

    async def forward(self, source: Conn, batch: Sequence[bytes]) -> None:
        """Forward ``batch``, datagrams that arrived on ``source``: one core decision each
        (drops are counted there), then one ``send_datagrams`` per destination. Its time
        (from the first decision to the last send, the sends' checkpoints included) goes to
        ``observe_forward``."""
        started = time.perf_counter()
        now = self._now()
        out: dict[Conn, list[bytes]] = {}
        on_datagram = self.core.on_datagram
        for data in batch:
            decision = on_datagram(source, data, now)
            if type(decision) is Forward:
                out.setdefault(decision.dest, []).append(decision.data)
        for dest, datagrams in out.items():
            target = self._live.get(dest)
            if target is None:
                self.counters.send_failures += len(datagrams)
                continue
            try:
                await target.send_datagrams(datagrams)
            except TransportError:
                self.counters.send_failures += len(datagrams)
        self.observe_forward(time.perf_counter() - started)

    def stats(self) -> ShellStats:
        """A snapshot of the shell's counters."""
        return ShellStats(**vars(self.counters))

    def close_ended(self, ended: Iterable[Ended]) -> None:
        """Close the media connections of legs that ended (``CLOSE_LEG_ENDED``), and tell
        the peer nodes of remote legs (the node-to-node links, when accepted)."""
        ended = list(ended)
        for leg in ended:
            channel = self._by_leg.pop(leg.leg_id, None)
            if channel is not None:
                channel.close(CLOSE_LEG_ENDED, str(leg.reason))
        if self._links is not None:
            self._links.legs_ended(ended)

    def report_ended(self, ended: Iterable[Ended]) -> None:
        """Legs that ended other than by a sweep or a hang-up (a peer node ended them, a
        link went): :meth:`close_ended`, then ``on_ended`` for each, as the sweep does."""
        ended = list(ended)
        self.close_ended(ended)
        for leg in ended:
            self.on_ended(leg)

    # --- tasks ----------------------------------------------------------------------------

    async def _accept(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                channel = await self._server.accept()
            except TransportError:
                return
            self.counters.connections += 1
            nursery.start_soon(self._connection, channel)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(self._sweep_interval)
            self.report_ended(self.core.expire(self._now()))

    async def _connection(self, channel: QuicChannel) -> None:
        """One media connection: bind, then forward until it closes; or a peer node's
        link, served by the link acceptor."""
        first = await self._first_message(channel)
        if first is None:
            return
        if self._links is not None and _is_link_hello(first):
            await self._links.serve_inbound(channel, first)
            return
        await self.serve_channel(channel, first, relayed=False)

    async def serve_channel(self, channel: MediaChannel, first: bytes, *, relayed: bool) -> None:
        """Serve the client connection whose first control message is ``first`` (a
        ``MediaBind``): a meeting leg's goes to the meetings, a leg another replica holds
        to :attr:`elsewhere` (unless ``relayed``: another replica relays this one to us),
        else bind it here, then forward until it closes."""
        leg_id = _bind_leg(first)
        if self._meetings is not None and self._meetings.owns(leg_id):
            await self._meetings.serve(channel, first)
            return
        if not relayed and self.elsewhere is not None and leg_id and not self._holds(leg_id):
            await self.elsewhere.serve(channel, first)
            return
        bound = await self._bind(channel, first)
        if bound is None:
            return
        try:
            if await self._answer(channel, encode(MediaBound(bound.leg_id, bound.sender))):
                await self._forward(channel)
        finally:
            self.core.unbind(channel, self._now())
            self.detach(channel)
            if self._by_leg.get(bound.leg_id) is channel:
                del self._by_leg[bound.leg_id]
            channel.close(CLOSE_LEG_ENDED, "unbound")

    def _holds(self, leg_id: bytes) -> bool:
        return self.core.leg_counters(leg_id) is not None

    async def _first_message(self, channel: QuicChannel) -> bytes | None:
        """The connection's first control message; None if it closed or sent none in time
        (then closed, ``CLOSE_BIND_TIMEOUT``)."""
        message: bytes | None = None
        with trio.move_on_after(self._bind_timeout):
            try:
                message = await channel.receive_control()
            except TransportError:
                return None
        if message is None:
            self.counters.bind_timeouts += 1
            channel.close(CLOSE_BIND_TIMEOUT, "no bind in time")
        return message

    async def _bind(self, channel: MediaChannel, message: bytes) -> Bound | None:
        """Bind the connection by its first control message, a ``MediaBind`` (the answer
        is the caller's to send). None if the connection was refused instead."""
        try:
            request = decode_bind(message)
        except WireError:
            self.counters.malformed_control += 1
            channel.close(CLOSE_MALFORMED_CONTROL, "malformed control message")
            return None
        try:
            bound = self.core.bind(channel, request.leg_id, request.leg_secret, self._now())
        except NodeError as refusal:
            self.counters.refused += 1
            await self._answer(channel, encode(MediaRefused(refusal.code, refusal.message)))
            channel.close(CLOSE_BIND_REFUSED, refusal.code)
            return None
        self.counters.bound += 1
        previous = self._by_leg.get(bound.leg_id)
        self._by_leg[bound.leg_id] = channel
        self.attach(channel, channel)
        if previous is not None and previous is not channel:
            previous.close(CLOSE_REBOUND, "the leg was bound by another connection")
        return bound

    async def _forward(self, channel: MediaChannel) -> None:
        """Forward the connection's datagrams until it closes (see the module docstring)."""
        while True:
            try:
                batch = await channel.receive_datagram_batch(FORWARD_BATCH)
            except TransportError:
                return
            await self.forward(channel, batch)

    @staticmethod
    async def _answer(channel: MediaChannel, message: bytes) -> bool:
        try:
            await channel.send_control(message)
        except TransportError:
            return False
        return True


def _bind_leg(message: bytes) -> bytes:
    """The leg id a ``MediaBind`` names (empty if ``message`` is none)."""
    try:
        return decode_bind(message).leg_id
    except WireError:
        return b""


def _is_link_hello(message: bytes) -> bool:
    """Whether ``message`` is a ``LinkHello`` (a peer node's link, not a client's bind)."""
    try:
        decode_hello(message)
    except WireError:
        return False
    return True
