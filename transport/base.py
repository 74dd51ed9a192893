"""The media transport interface: one media code path over QUIC or a WebSocket fallback.

Media code (framing, SFrame, jitter buffers) sees only :class:`MediaTransport`: unreliable,
unordered, size-bounded *datagrams* for media, and a reliable, ordered *control* channel of
whole messages. Two implementations:

``transport.quic.QuicChannel`` (here)
    datagrams are QUIC DATAGRAM frames (RFC 9221); control messages are length-prefixed on
    the client-initiated bidirectional stream 0 (RFC 9000 section 2.1).

WebSocket fallback (``client.calls.ws_media.WebSocketMedia``; the node's sending half is
``node.calls.wsmedia.WebSocketSink``)
    for networks that block UDP. The same datagrams as binary messages of their own on the
    client's existing ``/v1/client`` WebSocket, after a ``LegAttach`` frame bound it to the
    call leg (``wire.relay_calls``): a datagram's first byte (``0x11``) tells it from a
    frame (``0x93``). There is no control channel: binding is that frame. TCP makes
    "datagrams" reliable and ordered there, so a late frame arrives late instead of never;
    the jitter buffer drops it the same way.

Datagrams are loss-tolerant: a receiver whose queue is full drops the newest and counts it
(``TransportStats.datagrams_dropped``) rather than block the socket for every connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from wire.media import MAX_DATAGRAM

MAX_DATAGRAM_PAYLOAD: Final = MAX_DATAGRAM
"""Largest media datagram, bytes: ``wire.media.MAX_DATAGRAM`` (its one home; the media
framing and this transport share it). Measured with qh3, a 1,200-byte DATAGRAM frame goes
out in a 1,230-byte UDP payload, inside qh3's default 1,280-byte packet size."""

MAX_CONTROL_MESSAGE: Final = 65536
"""Largest control message, bytes (the length prefix can say more; a peer that does is
closed with a protocol error)."""

DATAGRAM_BATCH: Final = 64
"""Default most datagrams ``receive_datagram_batch`` returns at once."""

TransportKind = Literal["quic", "websocket"]


@dataclass(frozen=True)
class TransportStats:
    """Counters of one transport since it opened (a snapshot; counters only grow)."""

    datagrams_sent: int = 0
    datagrams_received: int = 0
    datagrams_dropped: int = 0
    """Received but dropped because the application's queue was full."""
    control_sent: int = 0
    control_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    """Datagram and control payload bytes, without transport overhead."""


class MediaTransport(Protocol):
    """One media connection: peer to own node, or node to node (see the module docstring)."""

    @property
    def kind(self) -> TransportKind: ...

    async def send_datagram(self, payload: bytes) -> None:
        """Send one datagram of at most ``MAX_DATAGRAM_PAYLOAD`` bytes; it may be lost.

        Raises ``MessageTooLarge`` over the bound, ``TransportClosed`` once closed."""

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        """Send several datagrams at once (the packets of one media frame): one wake-up
        and one flush for all, instead of one each. Same rules as ``send_datagram``."""

    async def receive_datagram(self) -> bytes:
        """The next datagram; raises ``TransportClosed`` when the transport has closed."""

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        """Wait for one datagram, then take every one already queued (at most ``limit``)
        without further checkpoints: a forwarder keeps up with bursts this way, where one
        ``receive_datagram`` per datagram costs a scheduler round each."""

    def datagrams(self) -> AsyncIterator[bytes]:
        """Every datagram until the transport closes (``async for d in t.datagrams()``)."""

    async def send_control(self, message: bytes) -> None:
        """Send one whole control message, reliably and in order."""

    async def receive_control(self) -> bytes:
        """The next control message; raises ``TransportClosed`` when closed."""

    async def aclose(self) -> None:
        """Close (idempotent); pending receives end with ``TransportClosed``."""

    def stats(self) -> TransportStats: ...


class MediaChannel(MediaTransport, Protocol):
    """A media connection a node serves as a client's: a :class:`MediaTransport` it can
    also close with an application code and a reason. A ``QuicChannel`` is one; so is a
    connection another replica of the node relays over a replica link
    (``node.calls.relayed``, docs/kubernetes.md "The leg's replica")."""

    def __hash__(self) -> int:
        """A connection is a key of the node's tables (compared by identity)."""
        ...

    def close(self, error_code: int, reason: str) -> None:
        """Close with ``error_code`` (once); pending receives end with ``TransportClosed``."""
