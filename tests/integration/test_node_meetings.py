"""A meeting of thirty on a real node process with ``udp_listen`` (issue 18; node.sfu.shell,
node.meetings_requests): three accounts each join ten simulated participants to one room
with ``MeetingJoin`` on ``/v1/client`` (nine over QUIC, one over the WebSocket fallback),
all in this test process, and replay the fixture's Opus frames for a few seconds with four
of them speaking. Every participant receives exactly the four speakers (the dominant and
the three loudest, never itself), byte for byte; silence goes to nobody; a datagram under
another participant's sender id is dropped and counted; ``/metrics`` has the
``sealrelay_meeting_*`` families; when everyone leaves the room ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Final

import pytest
import trio

from client.app import Client
from tests.integration.fedharness import LocalFederation, Person, metric
from tests.node.sfu.meetkit import Participant, talk
from transport.base import MediaTransport
from wire.relay import LegGrant, MeetingJoin, MeetingLeave, Ok

DOMAIN: Final = "meet.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
ACCOUNTS: Final = 3
PER_ACCOUNT: Final = 10
SPEAKER_LEVELS: Final = (5, 15, 25, 35)
WARM_UP_ROUNDS: Final = 60  # 1.2 s: four recomputes of the speakers
MEASURED_ROUNDS: Final = 150  # 3 s
TIME_LIMIT: Final = 90.0


@dataclass
class World:
    fed: LocalFederation
    people: list[Person]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("meet")
    fed = LocalFederation(base / "fed", [DOMAIN], extra=EXTRA)
    try:
        fed.start()
        homes = {f"m{i}": (DOMAIN, base / f"m{i}") for i in range(ACCOUNTS)}
        enrolled = trio.run(fed.enroll_all, homes)
        yield World(fed, [enrolled[name] for name in sorted(enrolled)])
    finally:
        fed.close()


async def _join(client: Client, room: bytes, websocket: bool) -> tuple[LegGrant, Participant]:
    grant = await client.link.request(MeetingJoin(0, room, ()))
    assert isinstance(grant, LegGrant)
    media: MediaTransport
    if websocket:
        media, sender = await client.media_websocket(grant)
    else:
        media, sender = await client.media_quic(grant)
    return grant, Participant(media, sender)


def test_thirty_participants_four_speakers(world: World) -> None:
    room = os.urandom(16)

    async def main() -> tuple[list[Participant], set[bytes], str, str, bytes]:
        async with AsyncExitStack() as stack:
            clients = [p.load() for p in world.people]
            for client in clients:
                await stack.enter_async_context(client.online())
            joined = []
            for client in clients:
                for i in range(PER_ACCOUNT):
                    joined.append((client, *await _join(client, room, i == PER_ACCOUNT - 1)))
            people = [p for _, _, p in joined]
            speakers = [people[0], people[PER_ACCOUNT - 1], people[PER_ACCOUNT], people[-1]]
            for p, level in zip(speakers, SPEAKER_LEVELS, strict=True):
                p.level = level
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                for p in people:
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    now = await talk(people, WARM_UP_ROUNDS, sent, 0.0)
                    await trio.sleep(0.5)
                    for p in people:
                        p.reset()
                    forger, victim = people[1], speakers[0]
                    real = forger.audio(now)[0]
                    forged = real[:3] + victim.sender.to_bytes(4, "big") + real[7:]
                    await forger.media.send_datagrams([forged])
                    await talk(people, MEASURED_ROUNDS, sent, now + 1)
                    await trio.sleep(0.5)
                    during = await world.fed.metrics(DOMAIN)
                    for client, grant, _ in joined:
                        assert isinstance(
                            await client.link.request(MeetingLeave(0, grant.leg_id)), Ok
                        )
                    after = await world.fed.metrics(DOMAIN)
                nursery.cancel_scope.cancel()
            return people, sent, during, after, forged

    people, sent, during, after, forged = trio.run(main)
    speakers = {p.sender for p in people if p.level is not None}
    assert len(speakers) == len(SPEAKER_LEVELS)
    for p in people:
        assert set(p.heard) == speakers - {p.sender}
        for s in speakers - {p.sender}:
            assert p.heard[s] >= MEASURED_ROUNDS // 2, (p.sender, s, p.heard[s])
        assert all(data in sent for data in p.received)
        assert forged not in p.received
    assert metric(during, "sealrelay_meeting_rooms") == 1
    assert metric(during, "sealrelay_meeting_participants") == ACCOUNTS * PER_ACCOUNT
    assert metric(during, "sealrelay_meeting_forwarded_datagrams_total") > 0
    assert metric(during, "sealrelay_meeting_dropped_total", reason="silence") > 0
    assert metric(during, "sealrelay_meeting_dropped_total", reason="stream_not_bound") == 1
    assert metric(after, "sealrelay_meeting_rooms") == 0
    assert metric(after, "sealrelay_meeting_participants") == 0
    assert metric(after, "sealrelay_meeting_forwarded_datagrams_total") >= metric(
        during, "sealrelay_meeting_forwarded_datagrams_total"
    )
