"""A peer domain's media link that lands on a replica not holding the leg or the room
(issue 18, item 4; node.calls.replicas ``carry``, node.sfu.peerrooms; docs/kubernetes.md
"The leg's replica"), with real processes: two replicas of ``replicas.test`` on one real
redis-server (``tests.integration.replicakit``) and one node of ``peer.test``.

How the peer's link is made to land on the second replica: ``started_cluster(peer=...)``
writes the second replica's URL as ``peer.test``'s ``[peers]`` endpoint for
``replicas.test``. A node dials a peer's media port at the host of that endpoint and the
port listed in the key document it fetched there, and each replica serves the document with
its own media port; so ``peer.test`` fetches the second replica's document and dials the
second replica, as a UDP load balancer may send it there. Nothing else changes: the
domain's accounts (Xavier at the first replica) keep their WebSocket and QUIC connection
on their own replica, and no test-only switch is added to the node.

Checked:

1. a call from ``peer.test`` (Bertrand) to Xavier, whose leg the first replica holds: the
   second replica chains the bridge to the first over a replica link; media cross both
   ways (raw datagrams byte for byte but the sender id, and the Opus + VP8 fixture played
   both ways); a hang-up on either side reaches the other; a second bridge to the claimed
   leg is ``call.leg_taken``; the second replica counts the chain on ``/metrics``;
2. a meeting anchored at ``replicas.test`` whose room the first replica holds (Xavier
   joined first): ``peer.test``'s participants join through the second replica, which has
   no participant in it yet, so it joins the room at the first and serves the peer's link
   as a port of its local room; then Yolanda's participants join that local room on the
   second replica; everyone hears the four speakers (of both domains and both replicas),
   and the room has one holder; the second replica counts the peer's join placed there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import pytest
import trio

from client.app import Client
from client.calls.runner import MediaRun
from client.errors import Refused
from node.errors import CALL_LEG_TAKEN, CALL_PEER_ENDED
from node.store import RedisStore
from tests.integration.callmedia import STEP, bridge, exchange, hang_ups, played
from tests.integration.fedharness import metric
from tests.integration.replicakit import (
    DOMAIN,
    Cluster,
    document,
    join,
    media_port,
    metrics,
    started_cluster,
)
from tests.node.sfu.meetkit import Participant, measure
from tests.redisproc import RedisServer
from transport.base import MediaTransport
from wire.calls import LegRef
from wire.relay import LegGrant, MeetingJoinAt

PEER: Final = "peer.test"
PER_SIDE: Final = 3
WARM_UP_ROUNDS: Final = 60
MEASURED_ROUNDS: Final = 150
TIME_LIMIT: Final = 90.0

pytestmark = pytest.mark.slow

MeetingRun = tuple[
    list[list[Participant]], list[list[dict[int, int]]], tuple[str, ...], bytes | None, int
]
"""The participants by side, what each heard, the ``/metrics`` of the two replicas and the
peer, the room's holder and its media port's offset from the first replica's."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with (
        RedisServer(tmp_path / "redis") as redis,
        started_cluster(tmp_path, redis.url, peer=PEER) as running,
    ):
        yield running


def _peer(cluster: Cluster) -> Client:
    assert cluster.peer is not None
    return cluster.peer.load()


def test_a_peer_domains_call_reaching_the_other_replica_is_chained_to_the_leg(
    cluster: Cluster,
) -> None:
    async def main() -> tuple[MediaRun, MediaRun, tuple[str, str], list[str]]:
        xavier, bertrand = cluster.people[0].load(), _peer(cluster)
        async with xavier.online(), bertrand.online():
            with trio.fail_after(STEP):
                bridged, granted = await bridge(bertrand, xavier, DOMAIN)
                b_media, b_sender = await bertrand.media_quic(bridged)
                x_media, x_sender = await xavier.media_quic(granted)
            b_run, x_run = await exchange(b_media, b_sender, x_media, x_sender)
            during = (await metrics(cluster.url(0)), await metrics(cluster.url(1)))
            codes = []
            with pytest.raises(Refused) as taken:
                await bertrand.leg_bridge(LegRef(DOMAIN, granted.leg_id))
            codes.append(taken.value.node_code)
            codes += await hang_ups(bertrand, xavier, DOMAIN, bridged, granted)
            await b_media.aclose()
            await x_media.aclose()
            return b_run, x_run, during, codes

    b_run, x_run, (first, second), codes = trio.run(main)
    played(b_run, x_run)
    played(x_run, b_run)
    assert codes == [CALL_LEG_TAKEN, CALL_PEER_ENDED, CALL_PEER_ENDED]
    # the peer's link reached the second replica only; it chained the bridge to the first
    assert metric(second, "sealrelay_call_links_open", kind="domain") == 1
    assert metric(second, "sealrelay_call_links_open", kind="replica") == 1
    assert metric(second, "sealrelay_call_remote_legs") == 2  # the chain's two halves
    assert metric(second, "sealrelay_call_legs") == 0
    assert metric(first, "sealrelay_call_links_open", kind="domain") == 0
    assert metric(first, "sealrelay_call_links_open", kind="replica") == 1
    assert metric(first, "sealrelay_call_legs") == 1  # Xavier's, bridged to the chain
    for text in (first, second):
        assert metric(text, "sealrelay_call_bridges") == 1
    assert metric(second, "sealrelay_call_replica_chains_total") == 1
    assert metric(first, "sealrelay_call_replica_chains_total") == 0


async def _join_at(client: Client, room: bytes) -> Participant:
    grant = await client.link.request(MeetingJoinAt(0, room, (), DOMAIN))
    assert isinstance(grant, LegGrant), grant
    media: MediaTransport
    media, sender = await client.media_quic(grant)
    return Participant(media, sender)


def test_a_peer_domains_cascade_reaching_the_other_replica_joins_the_room_there(
    cluster: Cluster,
) -> None:
    room = os.urandom(16)

    async def main() -> MeetingRun:
        redis = await RedisStore.open(cluster.redis_url)
        first_port = media_port(await document(cluster.url(0)))
        async with AsyncExitStack() as stack:
            xavier, bertrand = cluster.people[0].load(), _peer(cluster)
            yolanda = cluster.people[1].load()
            for client in (xavier, bertrand, yolanda):
                await stack.enter_async_context(client.online())
            with trio.fail_after(STEP):
                ours = [(await join(xavier, room))[1] for _ in range(PER_SIDE)]
                theirs = [await _join_at(bertrand, room) for _ in range(PER_SIDE)]
                # then the second replica's own participants join its local room
                hers = [(await join(yolanda, room))[1] for _ in range(PER_SIDE)]
            ours[0].level, ours[2].level = 10, 20
            theirs[1].level = 30
            hers[0].level = 25
            people = [ours, theirs, hers]
            everyone = ours + theirs + hers
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                for p in everyone:
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    await measure(everyone, WARM_UP_ROUNDS, MEASURED_ROUNDS, sent)
                    during = (
                        await metrics(cluster.url(0)),
                        await metrics(cluster.url(1)),
                        await cluster.fed.metrics(PEER),
                    )
                    heard = [[dict(p.heard) for p in side] for side in people]
                nursery.cancel_scope.cancel()
            now_ms = int(time.time() * 1000)
            holder = await redis.room_holder(room, now_ms)
            found = None if holder is None else await redis.media_address(holder, now_ms)
        await redis.aclose()
        port = -1 if found is None else found.port
        return people, heard, during, holder, port - first_port

    people, heard, (first, second, peer), holder, offset = trio.run(main)
    assert holder is not None
    assert offset == 0  # held by the first replica (its media port), and only there
    speakers = {p.sender for side in people for p in side if p.level is not None}
    assert len(speakers) == 4
    for side, (persons, heard_side) in enumerate(zip(people, heard, strict=True)):
        for p, got in zip(persons, heard_side, strict=True):
            assert set(got) == speakers - {p.sender}, (side, p.sender, got)
            for s in speakers - {p.sender}:
                assert got[s] >= MEASURED_ROUNDS // 2, (side, p.sender, s, got[s])
    assert metric(first, "sealrelay_meeting_participants") == PER_SIDE
    assert metric(first, "sealrelay_meeting_link_ports") == 1  # the second replica's link
    assert metric(first, "sealrelay_call_links_open", kind="domain") == 0
    # the second replica: its local room with its participants and two ports (upstream, peer)
    assert metric(second, "sealrelay_meeting_participants") == PER_SIDE
    assert metric(second, "sealrelay_meeting_link_ports") == 2
    assert metric(second, "sealrelay_call_links_open", kind="domain") == 1
    assert metric(second, "sealrelay_call_links_open", kind="replica") == 1
    assert metric(second, "sealrelay_meeting_peer_joins_placed_total") >= 1  # once, or rejoined
    assert metric(first, "sealrelay_meeting_peer_joins_placed_total") == 0
    assert metric(peer, "sealrelay_meeting_participants") == PER_SIDE
    assert metric(peer, "sealrelay_call_links_open", kind="domain") == 1
