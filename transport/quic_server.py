"""Server side of the QUIC media transport: one UDP socket, many connections.

Datagrams are demultiplexed by destination connection id: a 1-RTT (short header) packet's
id is the ``CID_LENGTH`` bytes after its first byte (RFC 9000 section 17.3), looked up
directly; any other datagram goes through qh3's header parser
(``qh3.quic.packet.pull_quic_header``; RFC 9000 section 17). A connection is known by every
id it issued (``ConnectionIdIssued``) plus the client's original destination id, which the
client's Initial packets carry until they learn ours. An unknown id starts a connection only
in a long-header Initial padded to 1,200 bytes (RFC 9000 section 14.1) of a version we
speak; anything else -- garbage, a short header for a connection we do not know, a full
table -- is dropped and counted, and the socket task goes on. A long header of another
version, in a datagram of at least 1,200 bytes, gets Version Negotiation (RFC 9000 section
6), which is smaller than what provoked it, so it cannot amplify a spoofed source.

    server = QuicServer(identity)
    address = await nursery.start(server.serve, "127.0.0.1", 0)
    channel = await server.accept()          # handshake done, control stream open

``accept`` yields a connection once TLS completed and the client's control preface
arrived; a full accept backlog refuses (closes) it and counts ``connections_refused``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

import trio
from qh3 import QuicConnection
from qh3._hazmat import Buffer
from qh3.quic.packet import (
    QuicHeader,
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from transport.clock import MONOTONIC, QuicClock
from transport.errors import TransportClosed
from transport.identity import QuicIdentity
from transport.loop import SocketLoop, Wakeup
from transport.quic import APP_NO_ERROR, QuicChannel
from transport.quic_config import (
    CID_LENGTH,
    DEFAULT_SETTINGS,
    EndpointCounters,
    EndpointStats,
    QuicSettings,
    server_configuration,
)
from transport.udp import Address, UdpSocket

_LONG_HEADER: Final = 0x80
"""Header Form bit of a packet's first byte (RFC 9000 section 17.2)."""

MIN_INITIAL_SIZE: Final = 1200
"""A client's Initial datagram is at least this large (RFC 9000 section 14.1)."""


class QuicServer:
    """A QUIC endpoint that accepts media connections (``serve`` + ``accept``)."""

    def __init__(
        self,
        identity: QuicIdentity,
        *,
        settings: QuicSettings = DEFAULT_SETTINGS,
        clock: QuicClock = MONOTONIC,
    ) -> None:
        self.counters = EndpointCounters()
        self._configuration = server_configuration(identity, settings)
        self._settings, self._clock = settings, clock
        self._wakeup = Wakeup()
        self._by_cid: dict[bytes, QuicChannel] = {}
        self._cids: dict[int, list[bytes]] = {}
        self._open: dict[int, QuicChannel] = {}
        self._accept_in, self._accept_out = trio.open_memory_channel[QuicChannel](
            settings.accept_backlog
        )
        self._sock: UdpSocket | None = None
        self._versions = frozenset(self._configuration.supported_versions)

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind ``(host, port)``, report the bound address, serve until cancelled."""
        sock = UdpSocket.bind(host, port, self.counters)
        self._sock = sock
        try:
            loop = SocketLoop(sock, self, self._clock, self._wakeup)
            task_status.started(sock.local_address)
            await loop.run()
        finally:
            for channel in list(self._open.values()):
                channel.close(APP_NO_ERROR, "server stopped")
            self._accept_in.close()
            sock.close()

    async def accept(self) -> QuicChannel:
        """The next established connection; ``TransportClosed`` once the server stopped."""
        try:
            return await self._accept_out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("the server has stopped") from None

    def stats(self) -> EndpointStats:
        return EndpointStats.of(self.counters, len(self._open))

    # --- Router ---------------------------------------------------------------------------

    def route(self, data: bytes, address: Address) -> QuicChannel | None:
        if data and not data[0] & _LONG_HEADER:  # fast path: a 1-RTT packet's id is at 1..
            channel = self._by_cid.get(data[1 : 1 + CID_LENGTH])  # (RFC 9000 section 17.3)
            if channel is not None:
                return channel
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            self.counters.malformed += 1
            return None
        channel = self._by_cid.get(header.destination_cid)
        return channel if channel is not None else self._admit(header, data, address)

    def channels(self) -> Collection[QuicChannel]:
        return self._open.values()

    def reap(self, channel: QuicChannel) -> None:
        self._open.pop(id(channel), None)
        for cid in self._cids.pop(id(channel), []):
            self._by_cid.pop(cid, None)

    # --- Owner ----------------------------------------------------------------------------

    def tighten(self, trio_deadline: float) -> None:
        self._wakeup.tighten(trio_deadline)

    def cid_issued(self, channel: QuicChannel, cid: bytes) -> None:
        self._by_cid[cid] = channel
        self._cids.setdefault(id(channel), []).append(cid)

    def cid_retired(self, cid: bytes) -> None:
        self._by_cid.pop(cid, None)

    def established(self, channel: QuicChannel) -> None:
        try:
            self._accept_in.send_nowait(channel)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.counters.connections_refused += 1
            channel.close(APP_NO_ERROR, "busy")

    # --- new connections ------------------------------------------------------------------

    def _admit(self, header: QuicHeader, data: bytes, address: Address) -> QuicChannel | None:
        """A channel for a client's first Initial, or ``None`` (counted)."""
        # header.version: None for a short header, 0 for Version Negotiation itself
        if (
            len(data) >= MIN_INITIAL_SIZE
            and header.version
            and header.version not in self._versions
        ):
            self._negotiate_version(header, address)
            return None
        if header.packet_type != QuicPacketType.INITIAL or len(data) < MIN_INITIAL_SIZE:
            self.counters.unknown_connection += 1
            return None
        if len(self._open) >= self._settings.max_connections:
            self.counters.connections_refused += 1
            return None
        connection = QuicConnection(
            configuration=self._configuration,
            original_destination_connection_id=header.destination_cid,
        )
        channel = QuicChannel(
            connection, self._bound(), self, settings=self._settings, clock=self._clock, pin=None
        )
        self._open[id(channel)] = channel
        self.cid_issued(channel, header.destination_cid)
        self.cid_issued(channel, connection.host_cid)
        return channel

    def _negotiate_version(self, header: QuicHeader, address: Address) -> None:
        """Answer an unknown version with Version Negotiation (RFC 9000 section 6)."""
        self.counters.unknown_connection += 1
        packet = encode_quic_version_negotiation(
            source_cid=header.destination_cid,
            destination_cid=header.source_cid,
            supported_versions=self._configuration.supported_versions,
        )
        self._bound().send(packet, address)

    def _bound(self) -> UdpSocket:
        if self._sock is None:  # routing happens only inside serve()
            raise RuntimeError("QuicServer.serve is not running")
        return self._sock
