"""The WebSocket fallback for call media, client side (DESIGN section 9; issue 17, "Fallback
when UDP is blocked"): :class:`WebSocketMedia`, a ``transport.MediaTransport`` over the
client's existing connection to its node (``client.net.Connection``).

After the node answered ``LegAttach`` with ``LegAttached`` (``wire.relay_calls``), media
datagrams (``wire.media``) travel as binary WebSocket messages of their own, each exactly
one datagram; the connection's reader tells them from frames by their first byte and hands
them to :meth:`WebSocketMedia.deliver`. A full receive queue drops the newest and counts it
(``TransportStats.datagrams_dropped``), as QUIC does, so a slow consumer never stalls the
connection's frames. TCP makes the "datagrams" reliable and ordered: a late frame arrives
late rather than never, and the jitter buffer drops it the same way.

Binding is the ``LegAttach`` frame, so nothing is sent on a control channel
(``send_control`` raises ``TransportClosed``). What the node says about a meeting leg's
streams comes as the pushes ``MeetingLayer`` and ``MeetingKeyframe``
(``wire.relay_meetings``), which the connection's reader hands to :meth:`WebSocketMedia.
notice`: those for this media's leg come out of ``receive_control`` as the QUIC control
stream's ``MediaLayer`` and ``MediaKeyframe`` (``wire.media_control``), so a meeting's media
reads the node's notices the same way on both transports (``client.meetings.mediarun``).
The media ends when the connection does (``TransportClosed``); a reconnection does not
carry it over: attach again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Final

import trio

from client.errors import NetworkError
from client.net import Connection
from transport.base import DATAGRAM_BATCH, MAX_DATAGRAM_PAYLOAD, TransportKind, TransportStats
from transport.errors import MessageTooLarge, TransportClosed
from wire import encode
from wire.media_control import MediaKeyframe, MediaLayer
from wire.relay import MeetingKeyframe, MeetingLayer

RECEIVE_QUEUE: Final = 1024
"""Datagrams held for the consumer before the newest are dropped (about a second of video)."""
NOTICE_QUEUE: Final = 64
"""The node's notices held for the consumer before the newest are dropped."""


class WebSocketMedia:
    """One call leg's media over the client's connection to its node (``kind`` websocket)."""

    def __init__(
        self, conn: Connection, *, queue: int = RECEIVE_QUEUE, leg_id: bytes | None = None
    ) -> None:
        self._conn = conn
        self._leg_id = leg_id
        self._in, self._out = trio.open_memory_channel[bytes](queue)
        self._notices_in, self._notices_out = trio.open_memory_channel[bytes](NOTICE_QUEUE)
        self._closed = False
        self.notices_dropped = 0
        """The node's notices not taken: another leg's, or the notice queue full."""
        self._stats: dict[str, int] = dict.fromkeys(vars(TransportStats()), 0)

    @property
    def kind(self) -> TransportKind:
        return "websocket"

    # --- fed by the connection's reader (client.net.MediaSink) ------------------------------

    def deliver(self, data: bytes) -> None:
        """One datagram read on the connection (dropped and counted if the queue is full)."""
        if self._closed:
            return
        try:
            self._in.send_nowait(data)
        except trio.WouldBlock:
            self._stats["datagrams_dropped"] += 1
            return
        self._stats["datagrams_received"] += 1
        self._stats["bytes_received"] += len(data)

    def notice(self, push: MeetingLayer | MeetingKeyframe) -> None:
        """A push about a meeting leg's streams: for :meth:`receive_control` if it is about
        this media's leg (any leg when the leg is not known), dropped and counted if not."""
        if self._closed:
            return
        if self._leg_id is not None and push.leg_id != self._leg_id:
            self.notices_dropped += 1
            return
        message: MediaLayer | MediaKeyframe
        if isinstance(push, MeetingLayer):
            message = MediaLayer(push.sender, push.layer, push.active)
        else:
            message = MediaKeyframe(push.sender, push.layer)
        try:
            self._notices_in.send_nowait(encode(message))
        except trio.WouldBlock:
            self.notices_dropped += 1

    def close(self) -> None:
        """No more datagrams: pending receives end with ``TransportClosed``."""
        if not self._closed:
            self._closed = True
            self._in.close()
            self._notices_in.close()
            if self._conn.media is self:
                self._conn.media = None

    # --- MediaTransport -----------------------------------------------------------------------

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams((payload,))

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        batch = list(payloads)
        if any(len(payload) > MAX_DATAGRAM_PAYLOAD for payload in batch):
            raise MessageTooLarge("a media datagram is larger than the bound")
        for payload in batch:
            if self._closed:
                raise TransportClosed("the media connection has closed")
            try:
                await self._conn.send_binary(payload)
            except NetworkError:
                self.close()
                raise TransportClosed("the connection to the node closed") from None
            self._stats["datagrams_sent"] += 1
            self._stats["bytes_sent"] += len(payload)

    async def receive_datagram(self) -> bytes:
        try:
            return await self._out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("the media connection has closed") from None

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        batch = [await self.receive_datagram()]
        while len(batch) < limit:
            try:
                batch.append(self._out.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        return batch

    def datagrams(self) -> AsyncIterator[bytes]:
        return self._out

    async def send_control(self, message: bytes) -> None:
        raise TransportClosed("the WebSocket fallback binds with LegAttach, not control messages")

    async def receive_control(self) -> bytes:
        """The node's next notice about this leg's streams (:meth:`notice`)."""
        try:
            return await self._notices_out.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("the media connection has closed") from None

    async def aclose(self) -> None:
        """Stop taking datagrams (the connection stays: it is the client's)."""
        self.close()
        await trio.lowlevel.checkpoint()

    def stats(self) -> TransportStats:
        return TransportStats(**self._stats)
