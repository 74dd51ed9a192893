"""A 1:1 call between two replicas of one domain in one trio process, over a real loopback
replica link (issue 18, item 4; node.calls.replicas, node.calls.clients ``elsewhere``):
each replica has its ``ClientLegs`` over one shared in-memory store (``CallLegs`` and
``MediaPlacement``); Bea's leg is allocated on replica B, Abe's ``LegBridge`` to it is
served by replica A. Their WebSockets (faked) carry the media.

Checked: the bridge opens one replica link and the media crosses it both ways, every byte
but the sender id (rewritten per hop, as across domains) as it was sent; a hang-up on either
side pushes ``LegEnded{call.peer_ended}`` to the other; a second bridge to a claimed leg is
``call.leg_taken``; a peer domain's ``LinkJoin`` on replica B still joins only B's own
client legs (a leg held by A is ``call.no_leg``) unless it carries (cluster mode's
``MediaLinks.carry``): then ``ReplicaCalls.carry`` on A claims B's leg and chains the
peer's bridge to it, media cross both hops, a second join is ``call.leg_taken``, an unknown
leg ``call.no_leg``, and B's hang-up reaches the peer as ``LinkEnd``; when B's address is
withdrawn, A's watch closes the link and both legs end. Without ``elsewhere`` (not in
cluster mode) a leg held by another replica is ``call.no_leg``, as before."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, cast

import pytest
import trio

from node.calls import Leg
from node.calls.clients import ClientLegs
from node.calls.peering import LinkBridges
from node.calls.peerlink import PeerLink
from node.calls.replicas import ReplicaCalls
from node.calls.shell import wall_clock_ms
from node.errors import CALL_LEG_TAKEN, CALL_NO_LEG, CALL_PEER_ENDED, NodeError
from node.keys import ServerKeys, generate
from node.store import MemoryStore
from tests.node.calls.helpers import datagram
from tests.node.calls.replicakit import (
    DOMAIN,
    LOOPBACK,
    STEP_TIMEOUT,
    SUITE,
    Replica,
    replica,
    replica_id,
    until,
)
from tests.node.calls.test_clients import Shell
from transport import QuicChannel
from wire.calls import LegRef
from wire.media_link import LinkEnd, LinkJoin, LinkJoined, LinkJoinRefused, decode_link_traffic
from wire.relay_calls import LegEnded

ADDRESS_TTL: Final = 60_000
ROUNDS: Final = 20
ABE, BEA = b"a" * 16, b"b" * 16
"""The owners (accounts' mailbox ids) of the two legs."""


@dataclass
class Side:
    replica: Replica
    legs: ClientLegs
    calls: ReplicaCalls


@dataclass
class Cluster:
    store: MemoryStore
    a: Side
    b: Side


@asynccontextmanager
async def _side(
    nursery: trio.Nursery, store: MemoryStore, keys: ServerKeys, *, cluster: bool = True
) -> AsyncIterator[Side]:
    async with replica(nursery, keys) as r:
        rid = replica_id(r)
        legs = ClientLegs(r.service, store, domain=DOMAIN, replica=rid, now_ms=wall_clock_ms)
        calls = ReplicaCalls(r.links, store, store, rid, now_ms=wall_clock_ms, interval=0.05)
        await nursery.start(legs.run)
        if cluster:
            await store.announce_media(rid, LOOPBACK, r.port, wall_clock_ms(), ADDRESS_TTL)
            await nursery.start(calls.run)
            legs.elsewhere = calls.bridge
        yield Side(r, legs, calls)


@asynccontextmanager
async def two_replicas(*, cluster: bool = True) -> AsyncIterator[Cluster]:
    keys, store = generate(SUITE), MemoryStore()
    async with trio.open_nursery() as nursery:
        async with (
            _side(nursery, store, keys, cluster=cluster) as a,
            _side(nursery, store, keys, cluster=cluster) as b,
        ):
            yield Cluster(store, a, b)
        nursery.cancel_scope.cancel()


@dataclass
class Call:
    abe: Shell
    abe_leg: Leg
    abe_sender: int
    bea: Shell
    bea_leg: Leg
    bea_sender: int


async def _call(cluster: Cluster) -> Call:
    """Bea's leg on B; Abe bridges to it on A; each attaches its WebSocket."""
    abe, bea = Shell(), Shell()
    bea_leg = await cluster.b.legs.allocate(BEA, bea)
    with trio.fail_after(STEP_TIMEOUT):
        abe_leg = await cluster.a.legs.bridge_to(ABE, abe, LegRef(DOMAIN, bea_leg.leg_id))
    abe_bound = cluster.a.legs.attach(ABE, abe, abe_leg.leg_id, abe_leg.leg_secret)
    bea_bound = cluster.b.legs.attach(BEA, bea, bea_leg.leg_id, bea_leg.leg_secret)
    return Call(abe, abe_leg, abe_bound.sender, bea, bea_leg, bea_bound.sender)


def _unsendered(data: bytes) -> bytes:
    """A datagram without its sender id (bytes 3-6), which each hop may rewrite."""
    return data[:3] + data[7:]


async def _carries(legs: ClientLegs, shell: Shell, sent: list[bytes], to: Shell) -> None:
    """``sent`` forwarded from ``shell`` arrive at ``to``, byte for byte but the sender."""
    await legs.forward(shell, sent)
    await until(lambda: len(to.sent) >= len(sent))
    assert [_unsendered(d) for d in to.sent] == [_unsendered(d) for d in sent]
    to.sent.clear()


async def test_a_call_crosses_two_replicas_both_ways_and_a_hang_up_ends_both_legs() -> None:
    async with two_replicas() as cluster:
        call = await _call(cluster)
        assert cluster.a.replica.links.kinds_up() == {"domain": 0, "replica": 1}
        await until(lambda: cluster.b.replica.links.kinds_up()["replica"] == 1)
        up = [datagram(call.abe_sender, secrets.token_bytes(60), frame=i) for i in range(ROUNDS)]
        down = [datagram(call.bea_sender, secrets.token_bytes(90), frame=i) for i in range(ROUNDS)]
        await _carries(cluster.a.legs, call.abe, up, call.bea)
        await _carries(cluster.b.legs, call.bea, down, call.abe)

        await cluster.a.legs.hang_up(ABE, call.abe, call.abe_leg.leg_id)
        await until(lambda: bool(call.bea.pushed))
        assert call.bea.pushed == [LegEnded(call.bea_leg.leg_id, CALL_PEER_ENDED)]
        assert call.abe.pushed == []  # answered Ok, not pushed
        assert await cluster.store.leg(call.bea_leg.leg_id, wall_clock_ms()) is None

        again = await _call(cluster)  # the other way round: the callee hangs up
        await cluster.b.legs.hang_up(BEA, again.bea, again.bea_leg.leg_id)
        await until(lambda: bool(again.abe.pushed))
        assert again.abe.pushed == [LegEnded(again.abe_leg.leg_id, CALL_PEER_ENDED)]
        assert cluster.a.replica.links.kinds_up()["replica"] == 1  # one link for both calls


async def test_a_claimed_leg_is_taken_and_a_peer_domains_join_reaches_no_other_replica() -> None:
    async with two_replicas() as cluster:
        call = await _call(cluster)
        with pytest.raises(NodeError) as taken:
            await cluster.a.legs.bridge_to(b"c" * 16, Shell(), LegRef(DOMAIN, call.bea_leg.leg_id))
        assert taken.value.code == CALL_LEG_TAKEN

        # a peer domain's link into replica B: as before, it joins B's own free legs only
        domain_link = LinkBridges(cluster.b.replica.core, object(), "peer.example")
        now = wall_clock_ms()
        held_by_a = domain_link.receive(LinkJoin(call.abe_leg.leg_id, 7), now)
        assert held_by_a.replies == (LinkJoinRefused(7, CALL_NO_LEG),)
        bridged = domain_link.receive(LinkJoin(call.bea_leg.leg_id, 8), now)
        assert bridged.replies == (LinkJoinRefused(8, CALL_LEG_TAKEN),)
        free = await cluster.b.legs.allocate(BEA, Shell())
        joined = domain_link.receive(LinkJoin(free.leg_id, 9), now)
        assert isinstance(joined.replies[0], LinkJoined)
        assert cluster.b.replica.links.kinds_up() == {"domain": 0, "replica": 1}


async def test_a_replica_whose_address_goes_is_let_go_and_both_legs_end() -> None:
    async with two_replicas() as cluster:
        call = await _call(cluster)
        await cluster.store.withdraw_media(replica_id(cluster.b.replica))
        await until(lambda: bool(call.abe.pushed) and bool(call.bea.pushed))
        assert call.abe.pushed == [LegEnded(call.abe_leg.leg_id, CALL_PEER_ENDED)]
        assert call.bea.pushed == [LegEnded(call.bea_leg.leg_id, CALL_PEER_ENDED)]
        assert cluster.a.calls.gone == 1


async def test_outside_cluster_mode_a_leg_of_another_replica_is_no_leg() -> None:
    async with two_replicas(cluster=False) as cluster:
        bea_leg = await cluster.b.legs.allocate(BEA, Shell())
        with pytest.raises(NodeError) as refused:
            await cluster.a.legs.bridge_to(ABE, Shell(), LegRef(DOMAIN, bea_leg.leg_id))
        assert refused.value.code == CALL_NO_LEG
        assert cluster.a.replica.links.kinds_up() == {"domain": 0, "replica": 0}


@dataclass(eq=False)
class Sink:
    """A peer domain's link as the relay sends datagrams to it."""

    sent: list[bytes] = field(default_factory=list)

    async def send_datagrams(self, batch: Sequence[bytes]) -> None:
        self.sent += batch


def _told(link: PeerLink) -> list[object]:
    """The messages queued on ``link`` so far."""
    told = []
    while True:
        try:
            told.append(decode_link_traffic(link.outbox.receive_nowait()))
        except trio.WouldBlock:
            return told


async def test_a_peer_domains_join_that_reached_the_other_replica_is_chained_to_the_holder() -> (
    None
):
    async with two_replicas() as cluster:
        bea = Shell()
        bea_leg = await cluster.b.legs.allocate(BEA, bea)
        bea_sender = cluster.b.legs.attach(BEA, bea, bea_leg.leg_id, bea_leg.leg_secret).sender
        # a peer domain's link that the load balancer sent to replica A
        near = PeerLink(cluster.a.replica.core, "peer.example", cast(QuicChannel, None), False)
        sink = Sink()
        cluster.a.replica.service.attach(near, sink)
        with trio.fail_after(STEP_TIMEOUT):
            await cluster.a.calls.carry(near, LinkJoin(bea_leg.leg_id, 77))
        (joined,) = _told(near)
        assert isinstance(joined, LinkJoined)
        assert joined.channel == 77
        assert cluster.a.calls.carried == 1
        assert cluster.a.replica.links.kinds_up() == {"domain": 0, "replica": 1}

        up = [datagram(joined.far_channel, secrets.token_bytes(60), frame=i) for i in range(5)]
        await cluster.a.replica.service.forward(near, up)
        await until(lambda: len(bea.sent) >= len(up))
        assert [_unsendered(d) for d in bea.sent] == [_unsendered(d) for d in up]
        down = [datagram(bea_sender, secrets.token_bytes(90), frame=i) for i in range(5)]
        await cluster.b.legs.forward(bea, down)
        await until(lambda: len(sink.sent) >= len(down))
        assert [_unsendered(d) for d in sink.sent] == [_unsendered(d) for d in down]
        assert {int.from_bytes(d[3:7], "big") for d in sink.sent} == {77}

        await cluster.a.calls.carry(near, LinkJoin(bea_leg.leg_id, 78))  # claimed: taken
        await cluster.a.calls.carry(near, LinkJoin(secrets.token_bytes(16), 79))  # unknown
        assert _told(near) == [
            LinkJoinRefused(78, CALL_LEG_TAKEN),
            LinkJoinRefused(79, CALL_NO_LEG),
        ]

        await cluster.b.legs.hang_up(BEA, bea, bea_leg.leg_id)  # the callee hangs up
        await until(lambda: bool(near.outbox.statistics().current_buffer_used))
        assert _told(near) == [LinkEnd(77)]
        assert cluster.a.replica.core.stats().remote_legs == 0
