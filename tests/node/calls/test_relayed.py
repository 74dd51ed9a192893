"""The bind elsewhere's trio side (node/calls/relayed.py, node/calls/relayends.py) over a
fake replica link: the front refuses a wrong secret without touching a link, the holder
serves a relayed bind as an accepted connection, control and datagrams pass in order,
either side's end reaches the other, a link's malformed relay traffic is ignored, and a
silent replica link is closed by the keep-alive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from node.calls import CallRelay
from node.calls.legs import secret_hash
from node.calls.peering import DOMAIN_KIND, REPLICA_KIND, ReplicaPeer
from node.calls.peerlink import PeerLink
from node.calls.relayed import KEEPALIVE_TIMEOUT, BindRelays
from node.calls.relayends import Front, RelayedChannel
from node.calls.shell import CallService
from node.errors import CALL_BAD_SECRET, CALL_NO_LEG, CALL_UNREACHABLE
from node.store import MemoryStore
from node.store.base import LegRecord
from tests.node.calls.helpers import T0, Draws, datagram
from transport import MAX_DATAGRAM_PAYLOAD, MessageTooLarge, QuicIdentity, TransportClosed
from transport.base import TransportStats
from wire import decode, encode
from wire.media_control import (
    CLOSE_BIND_REFUSED,
    CLOSE_LEG_ENDED,
    MediaBind,
    MediaBound,
    MediaRefused,
    decode_bind_answer,
)
from wire.media_link import (
    CLOSE_LINK_PROTOCOL,
    CLOSE_LINK_SILENT,
    CLOSE_RELAY_GONE,
    TRAFFIC_MESSAGES,
    LinkPing,
    RelayBind,
    RelayClose,
    RelayControl,
    unwrap_relayed,
    wrap_relayed,
)

IDENTITY = QuicIdentity.generate()
DOMAIN = "a.example"
HERE, THERE = b"h" * 16, b"t" * 16
SECRET = bytes(range(32))


@dataclass(eq=False)
class FakeQuic:
    """A link's QUIC connection: what is sent, what it says it received, how it closed."""

    datagrams: list[bytes] = field(default_factory=list)
    received: int = 0
    closed: tuple[int, str] | None = None
    datagram_limit: int = MAX_DATAGRAM_PAYLOAD

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        self.datagrams += list(payloads)
        await trio.lowlevel.checkpoint()

    def stats(self) -> TransportStats:
        return TransportStats(control_received=self.received)

    def close(self, code: int, reason: str) -> None:
        self.closed = self.closed or (code, reason)


def fake_link(*, outbound: bool = False, kind: str = REPLICA_KIND) -> PeerLink:
    return PeerLink(CallRelay(Draws()), DOMAIN, FakeQuic(), outbound, kind=kind)  # type: ignore[arg-type]


def sent(link: PeerLink) -> list[object]:
    """The link messages queued on ``link`` since the last call."""
    out: list[object] = []
    while True:
        try:
            out.append(decode(link.outbox.receive_nowait(), TRAFFIC_MESSAGES))
        except trio.WouldBlock:
            return out


@dataclass(eq=False)
class FakeClient:
    """The client's QUIC connection as the front sees it."""

    controls_in: list[bytes] = field(default_factory=list)
    controls_out: list[bytes] = field(default_factory=list)
    datagrams_out: list[bytes] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        self.control_send, self.control_recv = trio.open_memory_channel[bytes](10)
        self.datagram_send, self.datagram_recv = trio.open_memory_channel[bytes](10)

    async def receive_control(self) -> bytes:
        try:
            return await self.control_recv.receive()
        except trio.EndOfChannel:
            raise TransportClosed("closed") from None

    async def receive_datagram_batch(self, limit: int = 64) -> list[bytes]:
        try:
            return [await self.datagram_recv.receive()]
        except trio.EndOfChannel:
            raise TransportClosed("closed") from None

    async def send_control(self, message: bytes) -> None:
        if self.closed:
            raise TransportClosed("closed")
        self.controls_out.append(message)
        await trio.lowlevel.checkpoint()

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        self.datagrams_out += list(payloads)
        await trio.lowlevel.checkpoint()

    def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)
            self.control_send.close()
            self.datagram_send.close()


@dataclass
class Dialer:
    dialled: list[ReplicaPeer] = field(default_factory=list)
    link: PeerLink = field(default_factory=lambda: fake_link(outbound=True))

    async def room_link(self, peer: ReplicaPeer) -> PeerLink:
        self.dialled.append(peer)
        await trio.lowlevel.checkpoint()
        return self.link


@dataclass
class World:
    relays: BindRelays
    service: CallService
    store: MemoryStore
    dialer: Dialer


@asynccontextmanager
async def world(replica: bytes = HERE) -> AsyncIterator[World]:
    store, dialer = MemoryStore(), Dialer()
    service = CallService(CallRelay(Draws()), IDENTITY, now_ms=lambda: T0)
    relays = BindRelays(
        service, dialer, store, store, replica=replica, random=Draws(), now_ms=lambda: T0
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(relays.run)
        yield World(relays, service, store, dialer)
        nursery.cancel_scope.cancel()


# --- the front ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "secret", "code"),
    [
        (None, SECRET, CALL_NO_LEG),
        (LegRecord(bytes(16), THERE, secret_hash(SECRET), T0 + 1), bytes(32), CALL_BAD_SECRET),
        (LegRecord(bytes(16), HERE, secret_hash(SECRET), T0 + 1), SECRET, CALL_NO_LEG),
        (LegRecord(bytes(16), THERE, secret_hash(SECRET), T0 + 1), SECRET, CALL_UNREACHABLE),
    ],
)
async def test_the_front_refuses_before_any_link(
    record: LegRecord | None, secret: bytes, code: str
) -> None:
    async with world() as w:
        if record is not None:
            await w.store.add_leg(record)
        client = FakeClient()
        await w.relays.serve(client, encode(MediaBind(bytes(16), secret)))  # type: ignore[arg-type]
    answer = decode_bind_answer(client.controls_out[0])
    assert isinstance(answer, MediaRefused)
    assert answer.code == code
    assert client.closed == (CLOSE_BIND_REFUSED, code)
    assert w.dialer.dialled == []  # no address announced for THERE: no link either
    assert w.service.counters.refused == 1


async def test_the_front_relays_control_and_datagrams_and_ends_with_the_holder() -> None:
    async with world() as w, trio.open_nursery() as nursery:
        await w.store.add_leg(LegRecord(bytes(16), THERE, secret_hash(SECRET), T0 + 1))
        await w.store.announce_media(THERE, "10.0.0.2", 7481, T0, 15_000)
        client = FakeClient()
        nursery.start_soon(w.relays.serve, client, encode(MediaBind(bytes(16), SECRET)))
        await trio.testing.wait_all_tasks_blocked()
        link = w.dialer.link
        assert w.dialer.dialled == [ReplicaPeer(THERE, "10.0.0.2", 7481)]
        [bind] = sent(link)
        assert isinstance(bind, RelayBind)
        relay = bind.relay
        assert (bind.leg_id, bind.leg_secret) == (bytes(16), SECRET)
        # the holder answers; the client speaks; datagrams both ways
        bound = encode(MediaBound(bytes(16), 9))
        w.relays.receive_relay(link, RelayControl(relay, bound))
        await client.control_send.send(b"a control message")
        media = datagram(9)
        await client.datagram_send.send(media)
        await client.datagram_send.send(b"\x00" * (MAX_DATAGRAM_PAYLOAD + 1))  # dropped
        rest = await w.relays.forward_relayed(link, [wrap_relayed(relay, b"to the client"), media])
        await trio.testing.wait_all_tasks_blocked()
        assert rest == [media]  # not an envelope: the link's own
        assert client.controls_out == [bound]
        assert client.datagrams_out == [b"to the client"]
        assert sent(link) == [RelayControl(relay, b"a control message")]
        assert [unwrap_relayed(d) for d in link.channel.datagrams] == [(relay, media)]  # type: ignore[attr-defined]
        # the holder ends it: what it sent before reaches the client first
        last = encode(MediaRefused(CALL_NO_LEG, "gone"))
        w.relays.receive_relay(link, RelayControl(relay, last))
        w.relays.receive_relay(link, RelayClose(relay, CLOSE_LEG_ENDED, "leg ended"))
        await trio.testing.wait_all_tasks_blocked()
        assert client.controls_out[-1] == last
        assert client.closed == (CLOSE_LEG_ENDED, "leg ended")
        assert sent(link) == []  # the holder ended it: nothing owed back
        assert w.relays.open == 0


async def test_the_client_going_ends_the_holders_side_and_a_link_going_the_clients() -> None:
    async with world() as w, trio.open_nursery() as nursery:
        await w.store.add_leg(LegRecord(bytes(16), THERE, secret_hash(SECRET), T0 + 1))
        await w.store.announce_media(THERE, "10.0.0.2", 7481, T0, 15_000)
        first, second = FakeClient(), FakeClient()
        for client in (first, second):
            nursery.start_soon(w.relays.serve, client, encode(MediaBind(bytes(16), SECRET)))
        await trio.testing.wait_all_tasks_blocked()
        link = w.dialer.link
        one, two = (m.relay for m in sent(link) if isinstance(m, RelayBind))
        assert one != two
        first.close(0, "client gone")
        await trio.testing.wait_all_tasks_blocked()
        [closing] = sent(link)  # (which relay id is whose depends on the tasks' order)
        assert closing == RelayClose(closing.relay, CLOSE_LEG_ENDED, "the client went")
        assert closing.relay in {one, two}
        w.relays.relays_down(link)
        await trio.testing.wait_all_tasks_blocked()
        assert second.closed == (CLOSE_RELAY_GONE, "the leg's replica went")
        assert w.relays.open == 0


# --- the holder --------------------------------------------------------------------------


async def test_the_holder_serves_a_relayed_bind_as_an_accepted_connection() -> None:
    async with world(THERE) as w:
        leg = w.service.core.allocate("owner", T0)
        link = fake_link()
        w.relays.receive_relay(link, RelayBind(7, leg.leg_id, leg.leg_secret))
        await trio.testing.wait_all_tasks_blocked()
        [answer] = sent(link)
        assert isinstance(answer, RelayControl)
        bound = decode_bind_answer(answer.message)
        assert isinstance(bound, MediaBound)
        assert w.relays.counts == {"served": 1}
        # the leg ends here: the relayed connection is closed, the front told the code
        w.service.close_ended(w.service.core.hang_up("owner", leg.leg_id))
        await trio.testing.wait_all_tasks_blocked()
        [end] = sent(link)
        assert isinstance(end, RelayClose)
        assert (end.relay, end.code) == (7, CLOSE_LEG_ENDED)
        assert w.relays.open == 0


async def test_a_wrong_secret_relayed_is_refused_by_the_holder_too() -> None:
    async with world(THERE) as w:
        leg = w.service.core.allocate("owner", T0)
        link = fake_link()
        w.relays.receive_relay(link, RelayBind(7, leg.leg_id, bytes(32)))
        await trio.testing.wait_all_tasks_blocked()
        control, close = sent(link)
        assert isinstance(control, RelayControl)
        refused = decode_bind_answer(control.message)
        assert isinstance(refused, MediaRefused)
        assert refused.code == CALL_BAD_SECRET
        assert close == RelayClose(7, CLOSE_BIND_REFUSED, CALL_BAD_SECRET)


async def test_relay_traffic_out_of_place_is_refused_or_ignored() -> None:
    async with world(THERE) as w:
        outbound, domain = fake_link(outbound=True), fake_link(kind=DOMAIN_KIND)
        for link in (outbound, domain):
            w.relays.receive_relay(link, RelayBind(7, bytes(16), SECRET))
            assert sent(link) == [RelayClose(7, CLOSE_LINK_PROTOCOL, "relay refused")]
        link = fake_link()
        w.relays.receive_relay(link, RelayControl(99, b"nobody"))
        w.relays.receive_relay(link, RelayClose(99, 0, "nobody"))
        w.relays.receive_relay(link, LinkPing())
        assert await w.relays.forward_relayed(link, [wrap_relayed(99, b"x")]) == []
        assert sent(link) == []
        assert w.relays.open == 0


async def test_a_relayed_channel_is_a_media_channel() -> None:
    link = fake_link()
    channel = RelayedChannel(link, 5)
    channel.deliver_control(b"from the client")
    await channel.deliver_datagrams([b"d1", b"d2"])
    assert await channel.receive_control() == b"from the client"
    assert await channel.receive_datagram_batch() == [b"d1", b"d2"]
    await channel.send_control(b"to the client")
    await channel.send_datagrams([b"d3"])
    with pytest.raises(MessageTooLarge):
        await channel.send_datagrams([b"\x00" * (MAX_DATAGRAM_PAYLOAD + 1)])
    assert sent(link) == [RelayControl(5, b"to the client")]
    assert link.channel.datagrams == [wrap_relayed(5, b"d3")]  # type: ignore[attr-defined]
    channel.close(CLOSE_LEG_ENDED, "done")
    channel.close(CLOSE_LEG_ENDED, "again")
    assert sent(link) == [RelayClose(5, CLOSE_LEG_ENDED, "done")]
    with pytest.raises(TransportClosed):
        await channel.receive_control()
    with pytest.raises(TransportClosed):
        await channel.send_control(b"late")
    assert channel.stats().control_received == 1


async def test_front_end_is_idempotent() -> None:
    front = Front(FakeClient(), fake_link(outbound=True), 1)  # type: ignore[arg-type]
    front.end(1, "a")
    front.end(2, "b")
    front.deliver_control(b"after the end")  # ignored
    assert front.ended


# --- the keep-alive ------------------------------------------------------------------------


async def test_a_silent_replica_link_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as w:
        link = fake_link()
        quic: FakeQuic = link.channel  # type: ignore[assignment]
        with trio.move_on_after(KEEPALIVE_TIMEOUT + 5):
            await w.relays.tend(link)
        assert quic.closed == (CLOSE_LINK_SILENT, "nothing arrived in time")
        assert quic.datagram_limit > MAX_DATAGRAM_PAYLOAD
        assert all(isinstance(m, LinkPing) for m in sent(link))


async def test_a_replica_link_that_hears_its_peer_stays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as w:
        link = fake_link()
        quic: FakeQuic = link.channel  # type: ignore[assignment]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w.relays.tend, link)
            for _ in range(20):
                await trio.sleep(KEEPALIVE_TIMEOUT / 4)
                quic.received += 1
            nursery.cancel_scope.cancel()
        assert quic.closed is None
        assert len(sent(link)) >= 15


async def test_a_domain_link_gets_no_keep_alive() -> None:
    async with world() as w:
        link = fake_link(kind=DOMAIN_KIND)
        await w.relays.tend(link)
        assert sent(link) == []
