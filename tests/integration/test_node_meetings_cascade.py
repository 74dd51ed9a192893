"""A meeting cascaded over three domains, with real node processes on loopback UDP (issue 18,
"across domains, cascaded"; node.sfu.cascade, node.sfu.linkrooms).

alpha is the meeting's anchor (the host's node); bravo and charlie each join its room over
their one media link to alpha (``MeetingJoinAt`` naming alpha, on their own node: every
participant connects only to its own node). Ten simulated participants per domain share
this test process; four of them speak, spread over the domains, and one of bravo's sends a
video that one of charlie's asks for. Checked:

- every participant hears exactly the four speakers (the global dominant and the three
  loudest, never itself), byte for byte as sent, whichever domain they are in;
- the video reaches charlie's participant through alpha;
- each link carries one copy of each stream, not one per participant: what a member node
  receives over its link (``sealrelay_meeting_link_datagrams_total{direction="in"}``) is
  about what one of its participants hears from the other domains, while its ten
  participants together get about ten times that;
- a join of a room the anchor does not hold is refused with ``meeting.no_room``;
- no node's ``/metrics``, log or data files hold another domain's participant's address.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Final

import pytest
import trio

from client.app import Client
from client.errors import Refused
from tests.integration.callharness import address_forms, holders, leaks_in_text
from tests.integration.fedharness import LocalFederation, Person, data_files, metric
from tests.node.sfu.meetkit import Participant, sender_of, talk
from transport.base import MediaTransport
from wire.media import MediaHeader, MediaKind, StreamId, encode_datagram
from wire.relay import (
    LegGrant,
    MeetingJoinAt,
    MeetingLayerSpec,
    MeetingLeave,
    MeetingVideo,
    Ok,
)

ALPHA: Final = "alpha.test"
BRAVO: Final = "bravo.test"
CHARLIE: Final = "charlie.test"
DOMAINS: Final = (ALPHA, BRAVO, CHARLIE)
ACCOUNTS: Final = {ALPHA: "amalia", BRAVO: "bertrand", CHARLIE: "clementine"}
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
PER_DOMAIN: Final = 10
SPEAKERS: Final = ((ALPHA, 0, 5), (BRAVO, 0, 15), (CHARLIE, 3, 25), (BRAVO, 7, 35))
"""(domain, participant index, RFC 6464 level) of the four speakers."""
VIDEO_FROM: Final = (BRAVO, 9)
VIDEO_TO: Final = (CHARLIE, 9)
LAYER: Final = MeetingLayerSpec(180, 150)
WARM_UP_ROUNDS: Final = 60  # 1.2 s: four recomputes of the speakers
MEASURED_ROUNDS: Final = 150  # 3 s
TIME_LIMIT: Final = 60.0
VIDEO_PAYLOAD: Final = b"vp8 ciphertext the nodes never read" * 8


@dataclass
class World:
    fed: LocalFederation
    people: dict[str, Person]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("cascade")
    fed = LocalFederation(base / "fed", list(DOMAINS), extra=EXTRA)
    try:
        fed.start()
        homes = {name: (domain, base / name) for domain, name in ACCOUNTS.items()}
        enrolled = trio.run(fed.enroll_all, homes)
        yield World(fed, {domain: enrolled[name] for domain, name in ACCOUNTS.items()})
    finally:
        fed.close()


@dataclass(eq=False)
class Seat:
    domain: str
    index: int
    client: Client
    grant: LegGrant
    person: Participant


async def _join(client: Client, room: bytes, video: bool) -> tuple[LegGrant, Participant]:
    grant = await client.link.request(MeetingJoinAt(0, room, (LAYER,) if video else (), ALPHA))
    assert isinstance(grant, LegGrant), grant
    media: MediaTransport
    media, sender = await client.media_quic(grant)
    return grant, Participant(media, sender)


def _video(sender: int, frame: int) -> bytes:
    header = MediaHeader(
        StreamId(sender, MediaKind.VIDEO, 0), group=frame, object=0, frame=frame, packet=0,
        packets=1, keyframe=True,
    )  # fmt: skip
    return encode_datagram(header, VIDEO_PAYLOAD)


async def _send_video(person: Participant, sent: set[bytes], rounds: int) -> None:
    for frame in range(rounds):
        data = _video(person.sender, frame)
        sent.add(data)
        await person.media.send_datagrams([data])
        await trio.sleep(0.04)


@dataclass
class Run:
    seats: list[Seat]
    sent: set[bytes]
    before: dict[str, str]
    during: dict[str, str]
    after: dict[str, str]
    refusal: str


async def _metrics(fed: LocalFederation) -> dict[str, str]:
    return {domain: await fed.metrics(domain) for domain in DOMAINS}


def test_a_meeting_over_three_domains(world: World) -> None:
    room = os.urandom(16)

    async def main() -> Run:
        async with AsyncExitStack() as stack:
            clients = {d: world.people[d].load() for d in DOMAINS}
            for client in clients.values():
                await stack.enter_async_context(client.online())
            with pytest.raises(Refused) as refused:
                await clients[BRAVO].link.request(MeetingJoinAt(0, os.urandom(16), (), ALPHA))
            refusal = refused.value.node_code
            seats: list[Seat] = []
            for domain in DOMAINS:  # the anchor first: its room must exist
                for i in range(PER_DOMAIN):
                    video = (domain, i) == VIDEO_FROM
                    grant, person = await _join(clients[domain], room, video)
                    seats.append(Seat(domain, i, clients[domain], grant, person))
            by_place = {(s.domain, s.index): s for s in seats}
            for domain, index, level in SPEAKERS:
                by_place[(domain, index)].person.level = level
            watcher = by_place[VIDEO_TO]
            request = MeetingVideo(0, watcher.grant.leg_id, 1, 180, 1000)
            assert isinstance(await watcher.client.link.request(request), Ok)
            people = [s.person for s in seats]
            sent: set[bytes] = set()
            async with trio.open_nursery() as nursery:
                for p in people:
                    nursery.start_soon(p.listen)
                with trio.fail_after(TIME_LIMIT):
                    now = await talk(people, WARM_UP_ROUNDS, sent, 0.0)
                    await trio.sleep(0.5)
                    for p in people:
                        p.reset()
                    before = await _metrics(world.fed)
                    async with trio.open_nursery() as video:
                        video.start_soon(
                            _send_video, by_place[VIDEO_FROM].person, sent, MEASURED_ROUNDS // 2
                        )
                        await talk(people, MEASURED_ROUNDS, sent, now + 1)
                    await trio.sleep(0.5)
                    during = await _metrics(world.fed)
                    for seat in reversed(seats):
                        left = await seat.client.link.request(MeetingLeave(0, seat.grant.leg_id))
                        assert isinstance(left, Ok)
                    await trio.sleep(0.5)
                    after = await _metrics(world.fed)
                nursery.cancel_scope.cancel()
            return Run(seats, sent, before, during, after, refusal)

    run = trio.run(main)
    assert run.refusal == "meeting.no_room"

    speakers = {s.person.sender for s in run.seats if s.person.level is not None}
    assert len(speakers) == len(SPEAKERS)
    video_sender = _seat(run, VIDEO_FROM).person.sender
    for seat in run.seats:
        p = seat.person
        audio_heard = set(p.heard) - ({video_sender} if seat is _seat(run, VIDEO_TO) else set())
        assert audio_heard == speakers - {p.sender}, (seat.domain, seat.index, dict(p.heard))
        for s in speakers - {p.sender}:
            assert p.heard[s] >= MEASURED_ROUNDS // 2, (seat.domain, seat.index, s, p.heard[s])
        assert all(data in run.sent for data in p.received)
    watcher = _seat(run, VIDEO_TO)
    videos = [d for d in watcher.person.received if sender_of(d) == video_sender]
    assert len(videos) >= MEASURED_ROUNDS // 4

    _check_one_copy_per_domain(run, speakers, video_sender)
    for domain in DOMAINS:
        assert metric(run.after[domain], "sealrelay_meeting_rooms") == 0, domain
        assert metric(run.after[domain], "sealrelay_meeting_participants") == 0, domain
    _check_no_foreign_addresses(world, run)


def _seat(run: Run, place: tuple[str, int]) -> Seat:
    return next(s for s in run.seats if (s.domain, s.index) == place)


def _delta(run: Run, domain: str, name: str, **labels: str) -> float:
    return metric(run.during[domain], name, **labels) - metric(run.before[domain], name, **labels)


def _check_one_copy_per_domain(run: Run, speakers: set[int], video_sender: int) -> None:
    for domain in (BRAVO, CHARLIE):
        local = [s for s in run.seats if s.domain == domain]
        remote = {s.person.sender for s in run.seats if s.domain != domain} & (
            speakers | {video_sender}
        )
        one_copy = sum(max(s.person.heard[r] for s in local) for r in remote)
        consumed = sum(s.person.heard[r] for s in local for r in remote)
        link_in = _delta(run, domain, "sealrelay_meeting_link_datagrams_total", direction="in")
        assert one_copy * 0.9 <= link_in <= one_copy * 1.1 + 30, (domain, one_copy, link_in)
        assert consumed >= (PER_DOMAIN - 2) * link_in, (domain, consumed, link_in)
        link_bytes = _delta(run, domain, "sealrelay_meeting_link_bytes_total", direction="in")
        delivered = _delta(run, domain, "sealrelay_meeting_delivered_bytes_total")
        assert delivered >= (PER_DOMAIN - 2) * link_bytes > 0, (domain, delivered, link_bytes)
    anchor_out = _delta(run, ALPHA, "sealrelay_meeting_link_datagrams_total", direction="out")
    members_in = sum(
        _delta(run, d, "sealrelay_meeting_link_datagrams_total", direction="in")
        for d in (BRAVO, CHARLIE)
    )
    assert anchor_out == pytest.approx(members_in, rel=0.05, abs=30)


def _check_no_foreign_addresses(world: World, run: Run) -> None:
    for domain in DOMAINS:
        needles: dict[str, bytes] = {}
        for other in DOMAINS:
            if other != domain:
                forms = address_forms(world.people[other].address)
                needles |= {f"{other} {name}": form for name, form in forms.items()}
        node = world.fed.nodes[domain]
        assert not leaks_in_text(run.during[domain], needles), domain
        assert not leaks_in_text(node.log_text(), needles), domain
        paths = [*data_files(node.data_dir), node.log_path]
        assert not any(holders(paths, needles).values()), domain
