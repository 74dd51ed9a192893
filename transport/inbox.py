"""The receiving half of a media connection: the queues its transport fills with received
datagrams and control messages, and the ``MediaTransport`` receive methods over them
(``transport.base``). Shared by ``transport.quic.QuicChannel`` and the node's relayed
connections (``node.calls.relayends.RelayedChannel``), so both end their receivers the same
way: closing the sending side of a queue ends its receiver with ``TransportClosed``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import trio

from transport.base import DATAGRAM_BATCH
from transport.errors import TransportClosed

CLOSED: Final = "the connection has closed"


class Inbox:
    """Received datagrams and control messages, waiting for the application."""

    def __init__(self, datagram_queue: int, control_queue: int) -> None:
        self._datagram_in, self._datagram_out = trio.open_memory_channel[bytes](datagram_queue)
        self._control_in, self._control_out = trio.open_memory_channel[bytes](control_queue)

    async def receive_datagram(self) -> bytes:
        try:
            return await self._datagram_out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(CLOSED) from None

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        first = await self.receive_datagram()
        batch = [first]
        while len(batch) < limit:
            try:
                batch.append(self._datagram_out.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        return batch

    def datagrams(self) -> AsyncIterator[bytes]:
        return self._datagram_out

    async def receive_control(self) -> bytes:
        try:
            return await self._control_out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(CLOSED) from None


__all__ = ["CLOSED", "Inbox"]
