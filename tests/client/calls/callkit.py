"""Helpers of the call wiring tests: two devices' signalling (``CallNet``) joined by an
in-memory "network" that carries their call notes, and legs on an in-memory "node" whose
bridged legs carry datagrams between two in-memory transports."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import trio

from client.calls.callnet import CallNet
from client.calls.signal_events import CallConfig
from client.calls.signal_registry import CallRegistry
from client.content import unpack_call
from client.errors import ClientError, Refused, UntrustedIdentity
from tests.client.calls.signalkit import Randomness
from transport.base import DATAGRAM_BATCH, TransportKind, TransportStats
from transport.errors import TransportClosed
from wire.calls import LegRef
from wire.relay_calls import LegGrant

ALICE = "alice@one.example"
BOB = "bob@one.example"
DOMAIN = "one.example"


class MemoryMedia:
    """One end of an in-memory datagram pipe (a ``MediaTransport``)."""

    def __init__(self, kind: TransportKind) -> None:
        self.kind: TransportKind = kind
        self._send: trio.MemorySendChannel[bytes] | None = None
        self._out, self._in = trio.open_memory_channel[bytes](math.inf)
        self.closed = False
        self.sent = 0
        self.unbridged = 0

    @staticmethod
    def pair(kind: TransportKind) -> tuple[MemoryMedia, MemoryMedia]:
        a, b = MemoryMedia(kind), MemoryMedia(kind)
        a.connect(b)
        return a, b

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams([payload])

    def connect(self, other: MemoryMedia) -> None:
        """Join this end to ``other`` (a node bridging two legs)."""
        self._send, other._send = other._out, self._out

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        if self.closed:
            raise TransportClosed("closed")
        for payload in payloads:
            self.sent += 1
            if self._send is None:
                self.unbridged += 1  # no bridge yet: the node drops it
                continue
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self._send.send_nowait(payload)  # the other end closed: lost, as a datagram

    async def receive_datagram(self) -> bytes:
        return (await self.receive_datagram_batch(1))[0]

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        try:
            batch = [await self._in.receive()]
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("closed") from None
        while len(batch) < limit:
            try:
                batch.append(self._in.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def datagrams(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.receive_datagram()

    async def send_control(self, message: bytes) -> None:
        raise TransportClosed("no control channel here")

    async def receive_control(self) -> bytes:
        raise TransportClosed("no control channel here")

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._in.close()
            if self._send is not None:
                self._send.close()  # the peer's receive ends, as a node ends the bridge

    def stats(self) -> TransportStats:
        return TransportStats(datagrams_sent=self.sent)


@dataclass
class MemoryNode:
    """Legs by id, each with its media end; a bridge joins two legs' ends. Datagrams sent
    on a leg before its bridge are dropped, as a node drops them."""

    legs: dict[bytes, MemoryMedia] = field(default_factory=dict)
    hung_up: list[bytes] = field(default_factory=list)

    def new_leg(self) -> LegGrant:
        leg_id = os.urandom(16)
        self.legs[leg_id] = MemoryMedia("quic")
        return LegGrant(id=1, leg_id=leg_id, leg_secret=os.urandom(32))

    def bridge(self, other: bytes) -> LegGrant:
        if other not in self.legs:
            raise Refused("call.no_leg", "no such leg")
        grant = self.new_leg()
        self.legs[grant.leg_id].connect(self.legs[other])
        return grant


@dataclass
class MemoryLegs:
    """One device's leg requests to the in-memory node (``control.Legs``)."""

    node: MemoryNode
    domain: str = DOMAIN
    quic_works: bool = True
    kinds: list[TransportKind] = field(default_factory=list)

    async def leg_allocate(self) -> LegGrant:
        return self.node.new_leg()

    async def leg_bridge(self, ref: LegRef) -> LegGrant:
        return self.node.bridge(ref.leg_id)

    async def leg_hang_up(self, leg_id: bytes) -> None:
        self.node.hung_up.append(leg_id)
        end = self.node.legs.get(leg_id)
        if end is not None:
            await end.aclose()

    async def leg_ended(self, leg_id: bytes) -> None:
        await trio.sleep_forever()  # the transport closing stands for the node's push

    async def media_quic(self, grant: LegGrant) -> tuple[MemoryMedia, int]:
        if not self.quic_works:
            await trio.sleep_forever()  # UDP blocked: the handshake never completes
        return await self._bind(grant, "quic")

    async def media_websocket(self, grant: LegGrant) -> tuple[MemoryMedia, int]:
        return await self._bind(grant, "websocket")

    async def _bind(self, grant: LegGrant, kind: TransportKind) -> tuple[MemoryMedia, int]:
        await trio.sleep(0.01)
        end = self.node.legs[grant.leg_id]
        end.kind = kind
        self.kinds.append(kind)
        return end, int.from_bytes(os.urandom(4), "big")


@dataclass
class Wire:
    """The in-memory network between devices' ``CallNet``s: each composed note is opened
    by the addressee's net (unless it is offline); refusals on demand."""

    nets: dict[str, CallNet] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    untrusted: set[str] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)
    sent: list[tuple[str, str, object]] = field(default_factory=list)


@dataclass
class WireSender:
    """One device's ``SignalSender`` onto a :class:`Wire`."""

    wire: Wire
    me: str
    refused: dict[bytes, Refused] = field(default_factory=dict)

    async def compose(self, to: str, plaintext: bytes, ttl: int) -> list[bytes]:
        if to in self.wire.untrusted:
            raise UntrustedIdentity(to)
        if to not in self.wire.nets and to not in self.wire.offline:
            raise ClientError("no such account")
        note = unpack_call(plaintext)
        self.wire.sent.append((self.me, to, note.signal))
        eid = os.urandom(16)
        if to in self.wire.refuse:
            self.refused[eid] = Refused("send.refused", "refused")
        elif to not in self.wire.offline:
            self.wire.nets[to].call_note(self.me, note)
        return [eid]

    def wake(self) -> None:
        pass

    async def wait(self, eids: Iterable[bytes]) -> dict[bytes, Refused]:
        await trio.lowlevel.checkpoint()
        return {eid: self.refused[eid] for eid in eids if eid in self.refused}


def make_net(
    wire: Wire,
    me: str,
    *,
    ring_ms: int = 45_000,
    setup_ms: int = 15_000,
    changed: frozenset[str] = frozenset(),
) -> CallNet:
    """A device's ``CallNet`` on ``wire``; ``changed``: peers whose identity change is not
    accepted."""
    config = CallConfig(ring_timeout_ms=ring_ms, setup_timeout_ms=setup_ms)
    net = CallNet(
        CallRegistry(Randomness(me.encode()), config),
        WireSender(wire, me),
        identity_changed=lambda peer: peer in changed,
        reply=lambda: (None, None),
        clock=time.time,
    )
    wire.nets[me] = net
    return net
