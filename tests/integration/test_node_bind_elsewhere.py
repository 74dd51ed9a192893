"""The bind elsewhere (issue 18, item 4; node.calls.relayed, docs/kubernetes.md "The leg's
replica"): a client's WebSocket is on one replica, which grants its leg, and its QUIC bind
reaches the other replica's media port, as a UDP load balancer may send it. Two real node
processes over one real redis-server (``tests.integration.replicakit``). Checked:

- a 1:1 call whose second leg binds at the other replica: media flows both ways, byte for
  byte (every datagram that arrives is one the other party sent), over a replica link; a
  hang-up at the granting replica closes the relayed connection; when the relaying replica
  is killed, the other closes their replica link within the keep-alive's timeout;
- a meeting participant bound at the other replica hears the room's speakers and is
  heard, byte for byte;
- the control messages of a relayed meeting leg pass both ways: a relayed receiver's
  ``MediaVideo`` request reaches the forwarding unit, whose ``MediaKeyframe`` and
  ``MediaLayer`` notices reach a relayed sender, and the layer it asked for reaches it;
- a wrong secret at the other replica is refused ``call.bad_secret`` (an unknown leg
  ``call.no_leg``) and opens no replica link.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import pytest
import trio

from node.calls.relayed import KEEPALIVE_TIMEOUT
from node.errors import CALL_BAD_SECRET, CALL_NO_LEG
from node.sfu.model import DEFAULT_LAYERS
from tests.integration.fedharness import metric
from tests.integration.replicakit import DOMAIN, Cluster, bind_at, join, metrics, started_cluster
from tests.node.sfu.kit import video
from tests.node.sfu.meetkit import Participant, sender_of, talk
from tests.redisproc import RedisServer
from transport import TransportError
from wire import encode
from wire.calls import LegRef
from wire.media_control import (
    MediaBound,
    MediaKeyframe,
    MediaLayer,
    MediaRefused,
    MediaVideo,
    decode_notice,
)
from wire.relay import LegGrant, MeetingJoin
from wire.relay_meetings import MeetingLayerSpec

ROUNDS: Final = 100
TIME_LIMIT: Final = 60.0
REPLICA: Final = "replica"
LINKS: Final = "sealrelay_call_links_open"
RELAYED: Final = "sealrelay_call_relayed_binds_total"

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with RedisServer(tmp_path / "redis") as redis, started_cluster(tmp_path, redis.url) as c:
        yield c


def _heard_only(p: Participant, others: set[int], sent: set[bytes]) -> None:
    """``p`` heard each of ``others`` for most rounds, nothing else, byte for byte."""
    assert set(p.heard) == others, (p.sender, p.heard)
    for s in others:
        assert p.heard[s] >= ROUNDS // 2, (p.sender, s, p.heard)
    assert all(data in sent for data in p.received)


async def _closed_within(p: Participant, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        while True:
            try:
                await p.media.receive_datagram()
            except TransportError:
                return True
    return False


def test_a_call_leg_bound_at_the_other_replica(cluster: Cluster) -> None:
    async def main() -> tuple[Participant, Participant, set[bytes], tuple[str, str], bool, float]:
        async with AsyncExitStack() as stack:
            client = cluster.people[0].load()  # its WebSocket is on replica 0
            await stack.enter_async_context(client.online())
            callee = await client.leg_allocate()
            caller = await client.leg_bridge(LegRef(DOMAIN, callee.leg_id))
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                media, sender = await client.media_quic(callee)  # replica 0's port
                here = Participant(media, sender)
                channel, answer = await bind_at(
                    nursery, cluster.url(1), caller.leg_id, caller.leg_secret
                )
                assert isinstance(answer, MediaBound), answer
                there = Participant(channel, answer.sender)
                for p in (here, there):
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    await talk([here, there], ROUNDS, sent, 0.0)
                    await trio.sleep(0.5)
                    during = (await metrics(cluster.url(0)), await metrics(cluster.url(1)))
                    await client.leg_hang_up(callee.leg_id)
                    closed = await _closed_within(there, 10.0)
                    # the front replica dies: the holder's keep-alive drops its link
                    await trio.to_thread.run_sync(cluster.second.kill)
                    killed = trio.current_time()
                    while metric(await metrics(cluster.url(0)), LINKS, kind=REPLICA):  # noqa: ASYNC110
                        await trio.sleep(0.5)
                    silent_for = trio.current_time() - killed
                nursery.cancel_scope.cancel()
        return here, there, sent, during, closed, silent_for

    here, there, sent, (first, second), closed, silent_for = trio.run(main)
    _heard_only(here, {there.sender}, sent)
    _heard_only(there, {here.sender}, sent)
    assert all(sender_of(d) == there.sender for d in here.received)
    for text in (first, second):
        assert metric(text, LINKS, kind=REPLICA) == 1
    assert metric(first, RELAYED, outcome="served") == 1  # the holder
    assert metric(second, RELAYED, outcome="relayed") == 1  # the front
    assert metric(second, "sealrelay_call_relays_open") == 1
    assert closed  # the hang-up at replica 0 closed the connection relayed by replica 1
    assert silent_for < KEEPALIVE_TIMEOUT + 5  # not the QUIC idle timeout (30 s)


def test_a_meeting_participant_bound_at_the_other_replica(cluster: Cluster) -> None:
    room = os.urandom(16)

    async def main() -> tuple[list[Participant], set[bytes]]:
        async with AsyncExitStack() as stack:
            client = cluster.people[0].load()  # its WebSocket is on replica 0
            await stack.enter_async_context(client.online())
            people = [(await join(client, room))[1] for _ in range(2)]
            grant = await client.link.request(MeetingJoin(0, room, ()))
            assert isinstance(grant, LegGrant), grant
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                channel, answer = await bind_at(
                    nursery, cluster.url(1), grant.leg_id, grant.leg_secret
                )
                assert isinstance(answer, MediaBound), answer
                people.append(Participant(channel, answer.sender))
                people[0].level, people[2].level = 10, 20  # the relayed one speaks too
                for p in people:
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    await talk(people, 20, sent, 0.0)  # speakers settle
                    await trio.sleep(0.5)
                    for p in people:
                        p.reset()
                    await talk(people, ROUNDS, sent, 1.0)
                    await trio.sleep(0.5)
                nursery.cancel_scope.cancel()
        return people, sent

    people, sent = trio.run(main)
    speakers = {people[0].sender, people[2].sender}
    for p in people:
        _heard_only(p, speakers - {p.sender}, sent)


async def _until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10.0):
        while not condition():  # noqa: ASYNC110 - polled state, no event to wait on
            await trio.sleep(0.05)


def test_video_requests_and_notices_pass_the_relay(cluster: Cluster) -> None:
    room = os.urandom(16)
    layers = tuple(MeetingLayerSpec(x.height, x.kbps) for x in DEFAULT_LAYERS)

    async def main() -> tuple[Participant, Participant, list[bytes]]:
        async with AsyncExitStack() as stack:
            client = cluster.people[0].load()
            await stack.enter_async_context(client.online())
            people: list[Participant] = []
            async with trio.open_nursery() as nursery:
                for spec in (layers, ()):  # a sender of three layers, a receiver
                    grant = await client.link.request(MeetingJoin(0, room, spec))
                    assert isinstance(grant, LegGrant), grant
                    channel, answer = await bind_at(
                        nursery, cluster.url(1), grant.leg_id, grant.leg_secret
                    )
                    assert isinstance(answer, MediaBound), answer
                    people.append(Participant(channel, answer.sender))
                alice, bob = people
                nursery.start_soon(alice.read_control)
                nursery.start_soon(bob.listen)
                await bob.media.send_control(encode(MediaVideo(1, 180, 4000)))

                def notices() -> list[MediaLayer | MediaKeyframe]:
                    return [decode_notice(data) for data in alice.controls]

                def layer_states() -> dict[int, bool]:
                    return {n.layer: n.active for n in notices() if isinstance(n, MediaLayer)}

                await _until(lambda: MediaKeyframe(alice.sender, 0) in notices())
                await _until(lambda: layer_states() == {0: True, 1: False, 2: False})
                frames = [video(alice.sender, layer, keyframe=True) for layer in (0, 1)]
                await alice.media.send_datagrams(frames)
                await _until(lambda: bob.received == frames[:1])
                nursery.cancel_scope.cancel()
        return alice, bob, frames

    alice, bob, frames = trio.run(main)
    assert all(decode_notice(data).sender == alice.sender for data in alice.controls)
    assert bob.received == frames[:1]


def test_a_wrong_secret_at_the_other_replica_is_refused_and_opens_no_link(
    cluster: Cluster,
) -> None:
    async def main() -> tuple[object, object, str, str]:
        async with AsyncExitStack() as stack:
            client = cluster.people[0].load()
            await stack.enter_async_context(client.online())
            leg = await client.leg_allocate()
            async with trio.open_nursery() as nursery:
                _, wrong = await bind_at(nursery, cluster.url(1), leg.leg_id, os.urandom(32))
                _, unknown = await bind_at(nursery, cluster.url(1), os.urandom(16), os.urandom(32))
                nursery.cancel_scope.cancel()
            texts = (await metrics(cluster.url(0)), await metrics(cluster.url(1)))
        return wrong, unknown, *texts

    wrong, unknown, first, second = trio.run(main)
    assert isinstance(wrong, MediaRefused), wrong
    assert wrong.code == CALL_BAD_SECRET
    assert isinstance(unknown, MediaRefused), unknown
    assert unknown.code == CALL_NO_LEG
    for text in (first, second):
        assert metric(text, LINKS, kind=REPLICA) == 0
    assert metric(second, RELAYED, outcome="refused_call.bad_secret") == 1
    assert metric(second, RELAYED, outcome="refused_call.no_leg") == 1
    assert metric(second, RELAYED, outcome="relayed") == 0
