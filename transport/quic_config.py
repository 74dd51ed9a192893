"""Settings, counters and qh3 configurations of the QUIC media endpoints.

Both ends require ALPN ``sealrelay-media/1`` and DATAGRAM support (RFC 9221). A client does
no Web PKI check (``CERT_NONE``): it pins the server's certificate key instead
(``transport.identity``), and sends a constant SNI so that no name leaks.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Final

from qh3 import QuicConfiguration

from transport.identity import QuicIdentity
from transport.udp import SocketCounters

ALPN: Final = "sealrelay-media/1"
"""TLS ALPN (RFC 7301) of the media protocol; both ends require it."""

SERVER_NAME: Final = "sealrelay"
"""The constant SNI a client sends: names are not checked (pins are) and must not leak."""

CID_LENGTH: Final = 8
"""Bytes of the connection ids this endpoint issues (the server demultiplexes on them)."""


@dataclass(frozen=True)
class QuicSettings:
    """Tunables of a QUIC endpoint (seconds, counts, bytes)."""

    idle_timeout: float = 30.0
    handshake_timeout: float = 5.0
    datagram_queue: int = 256
    """Received datagrams waiting for the application; more are dropped and counted."""
    control_queue: int = 64
    """Received control messages waiting; more close the connection (control is reliable)."""
    max_datagram_frame_size: int = 1500
    """Our ``max_datagram_frame_size`` transport parameter (RFC 9221 section 3)."""
    max_connections: int = 1024
    """Server: connections at once; further Initial packets are dropped and counted."""
    accept_backlog: int = 64
    """Server: established connections waiting for ``accept()``; more are refused."""


DEFAULT_SETTINGS: Final = QuicSettings()


@dataclass
class EndpointCounters(SocketCounters):
    """Socket counters plus what the endpoint did with the datagrams (mutable)."""

    malformed: int = 0
    unknown_connection: int = 0
    library_errors: int = 0
    handshakes_completed: int = 0
    handshakes_failed: int = 0
    connections_refused: int = 0


@dataclass(frozen=True)
class EndpointStats:
    """A snapshot of an endpoint's counters; ``connections_open`` at the time of the call."""

    udp_received: int
    udp_sent: int
    udp_send_failed: int
    udp_receive_errors: int
    wakeups: int
    malformed: int
    unknown_connection: int
    library_errors: int
    handshakes_completed: int
    handshakes_failed: int
    connections_refused: int
    connections_open: int

    @classmethod
    def of(cls, counters: EndpointCounters, connections_open: int) -> EndpointStats:
        return cls(**vars(counters), connections_open=connections_open)


def client_configuration(settings: QuicSettings) -> QuicConfiguration:
    """Client side: no Web PKI (``CERT_NONE``); the peer key is checked against a pin."""
    return QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        connection_id_length=CID_LENGTH,
        idle_timeout=settings.idle_timeout,
        max_datagram_frame_size=settings.max_datagram_frame_size,
        server_name=SERVER_NAME,
        verify_mode=ssl.CERT_NONE,
        verify_hostname=False,
    )


def server_configuration(identity: QuicIdentity, settings: QuicSettings) -> QuicConfiguration:
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN],
        connection_id_length=CID_LENGTH,
        idle_timeout=settings.idle_timeout,
        max_datagram_frame_size=settings.max_datagram_frame_size,
    )
    configuration.load_cert_chain(identity.certificate_pem, identity.private_key_pem)
    return configuration
