"""The two ends of a client media connection relayed between two replicas of one domain
(issue 18, item 4; ``node.calls.relayed`` relays them, docs/kubernetes.md "The leg's
replica"): the :class:`Front` on the replica the client's QUIC connection reached, and the
:class:`RelayedChannel` that stands for that connection on the replica holding its leg.

Both are fed by ``BindRelays`` from the replica link's reader (control messages, the end)
and forwarder (datagrams), and never raise into them. A control message that finds the
queue full closes the relayed connection, as QUIC's would; a datagram that does, is
dropped and counted. Datagrams cross the link in their envelope (``wire.media_link``
``wrap_relayed``), at most a media datagram's bound each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import trio

from node.calls.peerlink import PeerLink
from transport import (
    MAX_DATAGRAM_PAYLOAD,
    MediaChannel,
    MessageTooLarge,
    TransportClosed,
    TransportError,
    TransportKind,
    TransportStats,
)
from transport.inbox import Inbox
from wire.media_control import CLOSE_LEG_ENDED, CLOSE_MALFORMED_CONTROL
from wire.media_link import (
    MAX_REJECT_MESSAGE,
    MAX_RELAYED_CONTROL,
    RelayClose,
    RelayControl,
    wrap_relayed,
)

DATAGRAM_QUEUE: Final = 256
"""Relayed datagrams waiting for the holder's forwarder; more are dropped (as QUIC's)."""
CONTROL_QUEUE: Final = 64
"""Relayed control messages waiting; more close the relayed connection (as QUIC's)."""
LIMIT: Final = MAX_DATAGRAM_PAYLOAD
"""Largest client datagram relayed (a media datagram's bound)."""


class RelayedChannel(Inbox):
    """On the holding replica: a client connection another replica relays over ``link`` as
    ``relay``; a :class:`~transport.MediaChannel`, served as an accepted QUIC connection
    (its receive methods are the :class:`~transport.inbox.Inbox`'s)."""

    def __init__(self, link: PeerLink, relay: int) -> None:
        super().__init__(DATAGRAM_QUEUE, CONTROL_QUEUE)
        self.link, self.relay = link, relay
        self._stats: dict[str, int] = dict.fromkeys(vars(TransportStats()), 0)
        self.closed = False
        self.on_close: Callable[[], object] = _nothing

    # --- MediaChannel ----------------------------------------------------------------------

    @property
    def kind(self) -> TransportKind:
        return "quic"

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams((payload,))

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        batch = list(payloads)
        if self.closed:
            raise TransportClosed("the relayed connection has closed")
        if any(len(payload) > MAX_DATAGRAM_PAYLOAD for payload in batch):
            raise MessageTooLarge(f"a datagram over {MAX_DATAGRAM_PAYLOAD} bytes")
        await self.link.channel.send_datagrams(wrap_relayed(self.relay, p) for p in batch)
        self._stats["datagrams_sent"] += len(batch)
        self._stats["bytes_sent"] += sum(len(p) for p in batch)

    async def send_control(self, message: bytes) -> None:
        if self.closed:
            raise TransportClosed("the relayed connection has closed")
        if len(message) > MAX_RELAYED_CONTROL:
            raise MessageTooLarge(f"a control message over {MAX_RELAYED_CONTROL} bytes")
        self.link.send(RelayControl(self.relay, message))
        self._stats["control_sent"] += 1
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.close(CLOSE_LEG_ENDED, "closed")
        await trio.lowlevel.checkpoint()

    def stats(self) -> TransportStats:
        return TransportStats(**self._stats)

    def close(self, error_code: int, reason: str) -> None:
        """Close (once): the front closes the client's connection with ``error_code``."""
        if not self.closed:
            self.link.send(RelayClose(self.relay, error_code, reason[:MAX_REJECT_MESSAGE]))
            self.end()

    # --- fed by BindRelays ------------------------------------------------------------------

    def end(self) -> None:
        """The relayed connection is over (the client or the link went): receivers end."""
        if self.closed:
            return
        self.closed = True
        self._datagram_in.close()
        self._control_in.close()
        self.on_close()

    def deliver_control(self, message: bytes) -> None:
        try:
            self._control_in.send_nowait(message)
        except trio.WouldBlock:
            self.close(CLOSE_MALFORMED_CONTROL, "control backlog")
            return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        self._stats["control_received"] += 1

    async def deliver_datagrams(self, batch: Sequence[bytes]) -> None:
        for data in batch:
            try:
                self._datagram_in.send_nowait(data)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                self._stats["datagrams_dropped"] += 1
                continue
            self._stats["datagrams_received"] += 1
            self._stats["bytes_received"] += len(data)
        await trio.lowlevel.checkpoint()


class Front:
    """On the replica the client reached: its connection ``channel``, relayed over
    ``link`` as ``relay`` to the leg's replica."""

    def __init__(self, channel: MediaChannel, link: PeerLink, relay: int) -> None:
        self.channel, self.link, self.relay = channel, link, relay
        self._out, self._outbox = trio.open_memory_channel[bytes](CONTROL_QUEUE)
        self.ended = False
        self._closing = (CLOSE_LEG_ENDED, "unbound")

    async def pump(self) -> None:
        """Pass control messages and datagrams both ways until either side ends."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write)
            nursery.start_soon(self._datagrams)
            await self._control()
            nursery.cancel_scope.cancel()

    def deliver_control(self, message: bytes) -> None:
        try:
            self._out.send_nowait(message)
        except trio.WouldBlock:
            self.end(CLOSE_MALFORMED_CONTROL, "control backlog")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def deliver_datagrams(self, batch: Sequence[bytes]) -> None:
        with contextlib.suppress(TransportError):  # the client went: its reader ends the relay
            await self.channel.send_datagrams(batch)

    def end(self, code: int, reason: str) -> None:
        """The holder ended the relay (or the link went): close the client's connection with
        ``code``, once the control messages before the end have reached it."""
        if not self.ended:
            self.ended = True
            self._closing = (code, reason)
            self._out.close()

    async def _control(self) -> None:
        while True:
            try:
                message = await self.channel.receive_control()
            except TransportError:
                return
            if len(message) > MAX_RELAYED_CONTROL:
                self.channel.close(CLOSE_MALFORMED_CONTROL, "control message too large")
                return
            self.link.send(RelayControl(self.relay, message))

    async def _datagrams(self) -> None:
        send = self.link.channel.send_datagrams
        while True:
            try:
                batch = await self.channel.receive_datagram_batch()
                # one over the media bound is dropped, as the holder would drop it
                await send([wrap_relayed(self.relay, d) for d in batch if len(d) <= LIMIT])
            except TransportError:
                return

    async def _write(self) -> None:
        async for message in self._outbox:
            try:
                await self.channel.send_control(message)
            except TransportError:
                return
        self.channel.close(*self._closing)  # the holder's end, after what it sent before


def _nothing() -> None:
    """The default ``on_close``."""


__all__ = ["CONTROL_QUEUE", "DATAGRAM_QUEUE", "LIMIT", "Front", "RelayedChannel"]
