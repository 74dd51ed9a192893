"""The WebSocket fallback's node side: a client's ``/v1/client`` WebSocket as the media
connection of its call legs (DESIGN section 9; issue 17, "Fallback when UDP is blocked").

After ``LegAttach`` (``wire.relay_calls``) the WebSocket carries media datagrams
(``wire.media``) as binary messages of their own, told from frames by their first byte
(``wire.relay_calls.is_media_message``). Inbound, the connection's shell hands runs of
them to :meth:`node.calls.clients.ClientLegs.forward` (one core decision each, no task per
datagram). Outbound, :class:`WebSocketSink` is the ``MediaTransport`` that
:meth:`node.calls.shell.CallService.attach` sends forwarded datagrams to: one binary
message per datagram, several in one write where the server offers it.

The sink only sends: the shell reads the WebSocket and feeds ``forward`` itself, so the
receiving half of the protocol reports the sink closed, and it has no control channel (the
bind is the ``LegAttach`` frame).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from transport.base import DATAGRAM_BATCH, MAX_DATAGRAM_PAYLOAD, TransportKind, TransportStats
from transport.errors import MessageTooLarge, TransportClosed


class ClientShell(Protocol):
    """What the node's client WebSocket (``node.connection.Connection``) offers the call
    relay: binary messages out, a frame pushed unasked, and whether it closed. It is the
    core's media connection (``Conn``) of the legs it carries: hashed by identity."""

    def __hash__(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    async def send_binary(self, messages: Sequence[bytes]) -> None:
        """Send each of ``messages`` as one binary WebSocket message, in order."""
        ...

    def push(self, frame: object) -> None:
        """Send ``frame`` soon, without waiting (a ``LegEnded``); nothing once closed."""
        ...


@dataclass
class SinkCounters:
    """What one sink sent (mutable)."""

    datagrams_sent: int = 0
    bytes_sent: int = 0


class WebSocketSink:
    """The ``MediaTransport`` of the datagrams the node forwards to a client's WebSocket."""

    def __init__(self, shell: ClientShell) -> None:
        self._shell = shell
        self._counters = SinkCounters()

    @property
    def kind(self) -> TransportKind:
        return "websocket"

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams((payload,))

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        batch = list(payloads)
        if any(len(payload) > MAX_DATAGRAM_PAYLOAD for payload in batch):
            raise MessageTooLarge("a media datagram is larger than the bound")
        if self._shell.closed:
            raise TransportClosed("the WebSocket has closed")
        await self._shell.send_binary(batch)
        self._counters.datagrams_sent += len(batch)
        self._counters.bytes_sent += sum(map(len, batch))

    async def receive_datagram(self) -> bytes:
        raise TransportClosed("the node's shell reads the WebSocket itself")

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        raise TransportClosed("the node's shell reads the WebSocket itself")

    def datagrams(self) -> AsyncIterator[bytes]:
        return _nothing()

    async def send_control(self, message: bytes) -> None:
        raise TransportClosed("the WebSocket fallback binds with LegAttach frames")

    async def receive_control(self) -> bytes:
        raise TransportClosed("the WebSocket fallback binds with LegAttach frames")

    async def aclose(self) -> None:
        """Nothing to close: the WebSocket is the client connection's."""

    def stats(self) -> TransportStats:
        c = self._counters
        return TransportStats(datagrams_sent=c.datagrams_sent, bytes_sent=c.bytes_sent)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # (an empty async generator)
