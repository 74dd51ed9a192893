"""transport: trio shells over kept transport libraries, shared by client and node.

Media for calls travels over a :class:`~transport.base.MediaTransport`: QUIC (RFC 9000)
with DATAGRAM frames (RFC 9221) from qh3's sans-I/O connection here, or a WebSocket
fallback written with the node wiring. DESIGN section 9.

    base            MediaTransport, MediaChannel, TransportStats, MAX_DATAGRAM_PAYLOAD
    errors          TransportError and its stable codes
    identity        QuicIdentity (P-384, self-signed), PinnedKey (SHA-256 of the SPKI)
    clock           QuicClock: qh3's clock and the conversion to trio deadlines
    udp             the non-blocking UDP socket, drained per wake-up
    quic_config     QuicSettings, endpoint counters, the qh3 configurations
    inbox           Inbox: the queues and receive methods of a connection's receiving half
    quic            QuicChannel: one connection as a MediaTransport
    loop            SocketLoop: the one task per socket
    quic_client     connect_quic: dial, pin-check, return an established channel
    quic_server     QuicServer: one socket, connections by connection id, accept()

Imports ``wire``, ``suites`` (and later ``trust``), trio and qh3; never ``client``,
``node`` or ``federation``, so both a client and a node may import it.
"""

from transport.base import (
    MAX_CONTROL_MESSAGE,
    MAX_DATAGRAM_PAYLOAD,
    MediaChannel,
    MediaTransport,
    TransportKind,
    TransportStats,
)
from transport.clock import MONOTONIC, QuicClock
from transport.errors import (
    HandshakeFailed,
    MessageTooLarge,
    PeerKeyMismatch,
    TransportClosed,
    TransportError,
)
from transport.identity import PinnedKey, QuicIdentity
from transport.quic import QuicChannel
from transport.quic_client import connect_quic
from transport.quic_config import DEFAULT_SETTINGS, EndpointStats, QuicSettings
from transport.quic_server import QuicServer

__all__ = [
    "DEFAULT_SETTINGS",
    "MAX_CONTROL_MESSAGE",
    "MAX_DATAGRAM_PAYLOAD",
    "MONOTONIC",
    "EndpointStats",
    "HandshakeFailed",
    "MediaChannel",
    "MediaTransport",
    "MessageTooLarge",
    "PeerKeyMismatch",
    "PinnedKey",
    "QuicChannel",
    "QuicClock",
    "QuicIdentity",
    "QuicServer",
    "QuicSettings",
    "TransportClosed",
    "TransportError",
    "TransportKind",
    "TransportStats",
    "connect_quic",
]
