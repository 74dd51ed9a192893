"""A meeting across two replicas of one domain (issue 18, item 4; node.sfu.placement,
docs/kubernetes.md "The leg's replica"): two real node processes share one real
redis-server and the domain's keys (as replicas share the Secret in Kubernetes), each with
its own loopback UDP media port. Six simulated participants join one room with
``MeetingJoin`` at each replica (their WebSocket and QUIC bind on the same replica); two
speak at each. Checked:

- the room is placed on one replica (the first joined), whose media address is announced
  in Redis; the other joins it over one intra-cluster media link (a ``replica`` link on
  both replicas' ``/metrics``), authenticated by the domain's own keys;
- every participant hears exactly the four speakers (never itself), byte for byte,
  whichever replica it is on;
- the replica holding no room is killed (SIGKILL): the holder goes on, its participants
  still hear their own speakers (and nothing else), and they leave cleanly; the dead
  replica's link stays a port of the room until the replica links' keep-alive drops it
  (10 s; ``node.calls.relayed``);
- the replica holding the room is killed: the other lets go of its link when the hold has
  expired and holds the room itself, its participants hearing their speakers throughout.

Each test runs its own redis-server and two replicas.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import trio

from node.store import RedisStore
from tests.integration.fedharness import metric
from tests.integration.replicakit import (
    Cluster,
    document,
    join,
    media_port,
    metrics,
    started_cluster,
)
from tests.node.sfu.meetkit import Participant, measure, talk
from tests.redisproc import RedisServer
from wire.relay import LegGrant, MeetingLeave, Ok

PER_REPLICA: Final = 6
SPEAKERS: Final = ((0, 0, 5), (0, 3, 15), (1, 1, 25), (1, 4, 35))
"""(replica, participant index, RFC 6464 level) of the four speakers."""
WARM_UP_ROUNDS: Final = 60
MEASURED_ROUNDS: Final = 150
AFTER_ROUNDS: Final = 100
TIME_LIMIT: Final = 90.0

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with RedisServer(tmp_path / "redis") as redis, started_cluster(tmp_path, redis.url) as c:
        yield c


@dataclass
class Run:
    people: list[list[Participant]]
    heard: list[list[dict[int, int]]]
    heard_after: list[dict[int, int]]
    sent: set[bytes]
    during: tuple[str, str]
    after_kill: str
    after: str
    holder: bytes | None
    holder_port: int | None
    holder_after: bytes | None
    first_port: int


def test_a_meeting_across_two_replicas(cluster: Cluster) -> None:
    room = os.urandom(16)

    async def main() -> Run:
        redis = await RedisStore.open(cluster.redis_url)
        first_port = media_port(await document(cluster.url(0)))
        async with AsyncExitStack() as stack:
            clients = [p.load() for p in cluster.people]
            for client in clients:
                await stack.enter_async_context(client.online())
            grants: list[list[LegGrant]] = [[], []]
            people: list[list[Participant]] = [[], []]
            for replica, client in enumerate(clients):  # replica 0 first: it holds the room
                for _ in range(PER_REPLICA):
                    grant, person = await join(client, room)
                    grants[replica].append(grant)
                    people[replica].append(person)
            for replica, index, level in SPEAKERS:
                people[replica][index].level = level
            everyone = people[0] + people[1]
            now_ms = int(time.time() * 1000)
            holder = await redis.room_holder(room, now_ms)
            found = None if holder is None else await redis.media_address(holder, now_ms)
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                for p in everyone:
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    now = await measure(everyone, WARM_UP_ROUNDS, MEASURED_ROUNDS, sent)
                    during = (await metrics(cluster.url(0)), await metrics(cluster.url(1)))
                    heard = [[dict(p.heard) for p in side] for side in people]
                    await trio.to_thread.run_sync(cluster.second.kill)
                    for p in people[0]:
                        p.reset()
                    await talk(people[0], AFTER_ROUNDS, sent, now + 1)
                    await trio.sleep(0.5)
                    after_kill = await metrics(cluster.url(0))
                    for grant in grants[0]:
                        left = await clients[0].link.request(MeetingLeave(0, grant.leg_id))
                        assert isinstance(left, Ok)
                    await trio.sleep(0.5)
                    after = await metrics(cluster.url(0))
                    holder_after = await redis.room_holder(room, int(time.time() * 1000))
                nursery.cancel_scope.cancel()
            heard_after = [dict(p.heard) for p in people[0]]
        await redis.aclose()
        port = None if found is None else found.port
        return Run(
            people, heard, heard_after, sent, during, after_kill, after, holder, port,
            holder_after, first_port,
        )  # fmt: skip

    run = trio.run(main)
    assert run.holder is not None
    assert run.holder_port == run.first_port  # placed on the replica joined first

    speakers = {run.people[r][i].sender for r, i, _ in SPEAKERS}
    for replica, side in enumerate(run.people):
        for p, heard in zip(side, run.heard[replica], strict=True):
            assert set(heard) == speakers - {p.sender}, (replica, p.sender, heard)
            for s in speakers - {p.sender}:
                assert heard[s] >= MEASURED_ROUNDS // 2, (replica, p.sender, s, heard[s])
    for p in run.people[0]:
        assert all(data in run.sent for data in p.received)

    for text in run.during:
        assert metric(text, "sealrelay_meeting_rooms") == 1
        assert metric(text, "sealrelay_meeting_participants") == PER_REPLICA  # the link is not one
        assert metric(text, "sealrelay_meeting_link_ports") == 1
        assert metric(text, "sealrelay_call_links_open", kind="replica") == 1
        assert metric(text, "sealrelay_call_links_open", kind="domain") == 0
    assert metric(run.during[0], "sealrelay_meeting_link_datagrams_total", direction="out") > 0
    assert metric(run.during[1], "sealrelay_meeting_link_datagrams_total", direction="in") > 0

    # the member replica killed: the holder's participants go on among themselves
    ours = {run.people[0][i].sender for r, i, _ in SPEAKERS if r == 0}
    for p, heard in zip(run.people[0], run.heard_after, strict=True):
        assert set(heard) <= speakers - {p.sender}, (p.sender, heard)
        for s in ours - {p.sender}:
            assert heard.get(s, 0) >= AFTER_ROUNDS // 2, (p.sender, s, heard)
    assert metric(run.after_kill, "sealrelay_meeting_rooms") == 1
    # the killed replica's link stays a port of the room until the keep-alive drops it
    assert metric(run.after, "sealrelay_meeting_participants") == 0
    assert metric(run.after, "sealrelay_meeting_link_ports") <= 1
    assert metric(run.after, "sealrelay_meeting_rooms") == 0  # no leg holds it here
    assert run.holder_after in (None, run.holder)


HOLDER_TAKEOVER: Final = 30.0
"""Seconds for the holder's hold to expire (10 s) and the other replica to place the room."""


def test_a_crashed_holders_room_is_placed_again_on_the_other_replica(cluster: Cluster) -> None:
    """The room is placed on the second replica (joined there first), the first bridges to
    it; the holder is killed: within the hold's TTL and a round the first replica holds
    the room itself, and its participants went on hearing their own speakers throughout."""
    room = os.urandom(16)

    async def main() -> tuple[int, int | None, list[dict[int, int]], list[Participant], float]:
        redis = await RedisStore.open(cluster.redis_url)
        first_port = media_port(await document(cluster.url(0)))
        async with AsyncExitStack() as stack:
            clients = [p.load() for p in cluster.people]
            for client in clients:
                await stack.enter_async_context(client.online())
            people: list[list[Participant]] = [[], []]
            for replica in (1, 0):  # the second replica first: it holds the room
                for _ in range(3):
                    people[replica].append((await join(clients[replica], room))[1])
            people[0][0].level, people[0][1].level = 10, 20
            people[1][0].level = 30
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                for p in people[0] + people[1]:
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    now = await talk(people[0] + people[1], WARM_UP_ROUNDS, sent, 0.0)
                    await trio.to_thread.run_sync(cluster.second.kill)
                    start = trio.current_time()
                    found = None
                    with trio.move_on_after(HOLDER_TAKEOVER):
                        while found is None or found.port != first_port:
                            now = await talk(people[0], 25, sent, now + 1)
                            now_ms = int(time.time() * 1000)
                            holder = await redis.room_holder(room, now_ms)
                            if holder is not None:
                                found = await redis.media_address(holder, now_ms)
                    took = trio.current_time() - start
                    for p in people[0]:
                        p.reset()
                    await talk(people[0], AFTER_ROUNDS, sent, now + 1)
                    await trio.sleep(0.5)
                nursery.cancel_scope.cancel()
            heard = [dict(p.heard) for p in people[0]]
        await redis.aclose()
        return first_port, None if found is None else found.port, heard, people[0], took

    first_port, holder_port, heard, ours, took = trio.run(main)
    assert holder_port == first_port, took  # placed again on the surviving replica
    speakers = {p.sender for p in ours if p.level is not None}
    for p, counts in zip(ours, heard, strict=True):
        for s in speakers - {p.sender}:
            assert counts.get(s, 0) >= AFTER_ROUNDS // 2, (p.sender, s, counts)
