"""The WebSocket fallback's node side: a client's ``/v1/client`` WebSocket as the media
connection of its call legs (DESIGN section 9; issue 17, "Fallback when UDP is blocked").

After ``LegAttach`` (``wire.relay_calls``) the WebSocket carries media datagrams
(``wire.media``) as binary messages of their own, told from frames by their first byte
(``wire.relay_calls.is_media_message``). Inbound, the connection's shell hands runs of
them to :meth:`node.calls.clients.ClientLegs.forward` (one core decision each, no task per
datagram). Outbound, :class:`WebSocketSink` is the ``MediaTransport`` that
:meth:`node.calls.shell.CallService.attach` sends forwarded datagrams to: one binary
message per datagram, several in one write where the server offers it.

A slow client must not stall the sender: ``send_datagrams`` only queues (at most
:data:`SINK_QUEUE` batches, never waiting), and one task per attached WebSocket
(:meth:`WebSocketSink.run`) writes what is queued, every batch waiting meanwhile in one
write. A batch that finds the queue full is dropped and counted as ``send_failures``
(``ShellCounters``), as datagrams are on a congested path.

The sink only sends: the shell reads the WebSocket and feeds ``forward`` itself, so the
receiving half of the protocol reports the sink closed, and it has no control channel (the
bind is the ``LegAttach`` frame).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from node.calls.shell import ShellCounters
from transport.base import DATAGRAM_BATCH, MAX_DATAGRAM_PAYLOAD, TransportKind, TransportStats
from transport.errors import MessageTooLarge, TransportClosed

log = logging.getLogger("sealrelay.node.calls")

SINK_QUEUE: Final = 32
"""Batches of datagrams queued for one WebSocket before further ones are dropped (a batch
is what one connection's wake-up forwarded: a few datagrams, a video frame's packets)."""


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
    """The ``MediaTransport`` of the datagrams the node forwards to a client's WebSocket;
    :meth:`run` must run (in a task) for them to leave."""

    def __init__(
        self, shell: ClientShell, counters: ShellCounters, *, queue: int = SINK_QUEUE
    ) -> None:
        self._shell = shell
        self._shared = counters
        self._counters = SinkCounters()
        self._in, self._out = trio.open_memory_channel[list[bytes]](queue)

    @property
    def kind(self) -> TransportKind:
        return "websocket"

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams((payload,))

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        """Queue ``payloads`` for the WebSocket, never waiting (module docstring)."""
        batch = list(payloads)
        if any(len(payload) > MAX_DATAGRAM_PAYLOAD for payload in batch):
            raise MessageTooLarge("a media datagram is larger than the bound")
        if self._shell.closed:
            raise TransportClosed("the WebSocket has closed")
        try:
            self._in.send_nowait(batch)
        except trio.WouldBlock:
            self._shared.send_failures += len(batch)
        except trio.ClosedResourceError:
            raise TransportClosed("the WebSocket has closed") from None

    async def run(self) -> None:
        """Write the queued datagrams until :meth:`close`."""
        async for batch in self._out:
            while True:
                try:
                    batch += self._out.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            try:
                await self._shell.send_binary(batch)
            except Exception as exc:  # the WebSocket broke: its shell ends it
                log.warning("call media not sent", extra={"error": type(exc).__name__})
                self._shared.send_failures += len(batch)
                self.close()
                return
            self._counters.datagrams_sent += len(batch)
            self._counters.bytes_sent += sum(map(len, batch))

    def close(self) -> None:
        """The WebSocket went: :meth:`run` ends, later sends raise ``TransportClosed``."""
        self._in.close()

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
