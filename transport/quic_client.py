"""Client side of the QUIC media transport: connect to (host, port), authenticate the
server by a pinned certificate key, return an established ``QuicChannel``.

    async with trio.open_nursery() as nursery:
        channel = await connect_quic(nursery, host, port, pin=node_pin)
        await channel.send_datagram(b"...")
        await channel.aclose()          # also ends the socket task it started in nursery

The socket task runs in the caller's nursery (trio's structured concurrency: the caller
decides its lifetime); errors of the handshake are raised from ``connect_quic`` itself.
"""

from __future__ import annotations

import socket
from collections.abc import Collection

import trio
from qh3 import QuicConnection

from transport.clock import MONOTONIC, QuicClock
from transport.errors import HANDSHAKE_TIMEOUT, HandshakeFailed
from transport.identity import PinnedKey
from transport.loop import SocketLoop, Wakeup
from transport.quic import QuicChannel
from transport.quic_config import (
    DEFAULT_SETTINGS,
    EndpointCounters,
    EndpointStats,
    QuicSettings,
    client_configuration,
)
from transport.udp import Address, UdpSocket


class _ClientEndpoint:
    """Router and ``Owner`` of a client socket: one connection, one server address."""

    def __init__(self, server: Address, wakeup: Wakeup) -> None:
        self.counters = EndpointCounters()
        self.channel: QuicChannel | None = None
        self._server, self._wakeup = server, wakeup

    def route(self, data: bytes, address: Address) -> QuicChannel | None:
        if self.channel is None or tuple(address[:2]) != tuple(self._server[:2]):
            self.counters.unknown_connection += 1
            return None
        return self.channel

    def channels(self) -> Collection[QuicChannel]:
        return () if self.channel is None else (self.channel,)

    def reap(self, channel: QuicChannel) -> None:
        self.channel = None

    def tighten(self, trio_deadline: float) -> None:
        self._wakeup.tighten(trio_deadline)

    def cid_issued(self, channel: QuicChannel, cid: bytes) -> None:
        """A client routes by address, not by connection id."""

    def cid_retired(self, cid: bytes) -> None:
        """See ``cid_issued``."""

    def established(self, channel: QuicChannel) -> None:
        """``connect_quic`` waits on ``channel.settled`` instead."""

    def stats(self) -> EndpointStats:
        return EndpointStats.of(self.counters, len(self.channels()))


async def connect_quic(
    nursery: trio.Nursery,
    host: str,
    port: int,
    *,
    pin: PinnedKey,
    settings: QuicSettings = DEFAULT_SETTINGS,
    clock: QuicClock = MONOTONIC,
) -> QuicChannel:
    """Handshake with ``(host, port)``; raise ``PeerKeyMismatch`` or ``HandshakeFailed``."""
    server = await _resolve(host, port)
    channel: QuicChannel = await nursery.start(_run, server, pin, settings, clock)
    with trio.move_on_after(settings.handshake_timeout) as waited:
        await channel.settled.wait()
    if channel.is_established and channel.failure is None:
        return channel
    await channel.aclose()
    if waited.cancelled_caught:
        raise HandshakeFailed("no handshake in time", code=HANDSHAKE_TIMEOUT)
    raise channel.failure or HandshakeFailed("the handshake failed")


async def _run(
    server: Address,
    pin: PinnedKey,
    settings: QuicSettings,
    clock: QuicClock,
    *,
    task_status: trio.TaskStatus[QuicChannel] = trio.TASK_STATUS_IGNORED,
) -> None:
    wakeup = Wakeup()
    endpoint = _ClientEndpoint(server, wakeup)
    sock = UdpSocket.bind("::" if ":" in server[0] else "0.0.0.0", 0, endpoint.counters)  # noqa: S104
    try:
        connection = QuicConnection(configuration=client_configuration(settings))
        channel = QuicChannel(connection, sock, endpoint, settings=settings, clock=clock, pin=pin)
        endpoint.channel = channel
        channel.start_client(server)
        loop = SocketLoop(sock, endpoint, clock, wakeup)
        with trio.CancelScope() as scope:
            channel.on_close = scope.cancel
            task_status.started(channel)
            await loop.run()
    finally:
        sock.close()


async def _resolve(host: str, port: int) -> Address:
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise HandshakeFailed(f"no address for {host!r}")
    return infos[0][4]
