"""A peer domain's join of a room another replica holds (issue 18, item 4;
node.sfu.peerrooms, ``RoomPlacement.join_holder``, ``MeetingService.anchored``): the pure
decisions, the holder's lookup over an in-memory ``MediaPlacement``, the placement task
with fakes of the shell, which links may join a local room joined at a replica, and (a
real shell in cluster mode, on a mock clock) a local room held only for a peer's link
joined again at the holder when its upstream link goes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final, cast

import pytest
import trio
import trio.testing

from node.calls.peering import ReplicaPeer
from node.errors import CALL_UNREACHABLE, MEETING_NO_ROOM, NodeError
from node.sfu.linkrooms import LinkRooms, MeetingLink
from node.sfu.peerrooms import MAX_PLACING, PeerRooms, Rooms, to_place
from node.sfu.placement import MEDIA_TTL_MS, RoomPlacement, holder_elsewhere
from node.sfu.rooms import MeetingLegs
from node.sfu.shell import MeetingService
from node.store import MemoryStore
from tests.node.sfu.test_placement import (
    DOMAIN,
    ROOM,
    T0,
    Clock,
    Upstream,
    X,
    Y,
    _as_rooms,
    _pair,
)
from tests.node.sfu.test_shell_cascade import Link
from wire.media_link import (
    LinkSender,
    RoomEnd,
    RoomJoin,
    RoomJoined,
    RoomRefused,
    SendersAdded,
)

STEP: Final = 5.0


@dataclass(eq=False)
class KindLink(Link):
    """An in-memory link that tells its kind, as ``PeerLink`` does."""

    kind: str = "domain"


def test_only_a_peer_domains_join_of_a_room_not_live_here_is_placed_first() -> None:
    join = RoomJoin(ROOM)
    assert to_place(join, "domain", anchored=False) == ROOM
    assert to_place(join, "domain", anchored=True) is None  # served here now
    assert to_place(join, "replica", anchored=False) is None  # a replica names placed rooms
    assert to_place(RoomEnd(ROOM, True), "domain", anchored=False) is None


def test_the_holder_to_join_is_another_replica() -> None:
    assert holder_elsewhere(X, Y) == X
    for holder in (None, Y):
        with pytest.raises(NodeError) as refused:
            holder_elsewhere(holder, Y)
        assert refused.value.code == MEETING_NO_ROOM


async def test_a_peer_join_goes_to_the_announced_holder_and_never_claims() -> None:
    x, y, clock = _pair()
    upstream = Upstream()
    with pytest.raises(NodeError) as none:
        await y.join_holder(_as_rooms(upstream), ROOM)
    assert none.value.code == MEETING_NO_ROOM
    assert await y.port.room_holder(ROOM, clock.now) is None  # not claimed by the lookup
    assert await x.claim(ROOM) is None
    with pytest.raises(NodeError) as silent:  # the holder announced no address
        await y.join_holder(_as_rooms(upstream), ROOM)
    assert silent.value.code == CALL_UNREACHABLE
    await x.port.announce_media(X, "10.0.0.7", 7481, clock.now, MEDIA_TTL_MS)
    assert await y.join_holder(_as_rooms(upstream), ROOM) == ROOM
    assert upstream.calls == [("enter_at", ROOM, DOMAIN, ROOM, ReplicaPeer(X, "10.0.0.7", 7481))]
    with pytest.raises(NodeError) as mine:  # held here, yet not live: it just ended
        await x.join_holder(_as_rooms(Upstream()), ROOM)
    assert mine.value.code == MEETING_NO_ROOM


@dataclass
class Received:
    """A fake of ``LinkRooms`` as the peer rooms use it: what reached the cascade."""

    got: list[tuple[Any, Any]] = field(default_factory=list)

    def receive(self, link: MeetingLink, message: Any) -> None:
        self.got.append((link, message))


@dataclass
class Shell:
    """A fake of the meeting shell (``node.sfu.peerrooms.Rooms``)."""

    remote: Any = field(default_factory=Received)
    live: set[bytes] = field(default_factory=set)
    ends: list[bytes] = field(default_factory=list)

    def anchored(self, room: bytes, link: object = None) -> bool:
        return room in self.live

    def end_if_empty(self, room: bytes) -> None:
        self.ends.append(room)


@dataclass
class Holder:
    """A fake of ``RoomPlacement.join_holder``: waits for ``go``, then joins or refuses."""

    shell: Shell
    go: trio.Event = field(default_factory=trio.Event)
    refusal: Exception | None = None
    calls: int = 0

    async def join_holder(self, remote: LinkRooms, room: bytes) -> bytes:
        self.calls += 1
        await self.go.wait()
        if self.refusal is not None:
            raise self.refusal
        self.shell.live.add(room)
        return room


async def _settle() -> None:
    for _ in range(10):
        await trio.lowlevel.checkpoint()


async def test_the_join_is_placed_in_a_task_then_served_or_refused() -> None:
    shell = Shell()
    holder = Holder(shell)
    peers = PeerRooms(cast(Rooms, shell), cast(RoomPlacement, holder))
    link = KindLink("b.example")
    assert not peers.intercept(link, RoomJoin(ROOM))  # not running: the cascade refuses
    async with trio.open_nursery() as nursery:
        await nursery.start(peers.run)
        assert not peers.intercept(KindLink("a.example", kind="replica"), RoomJoin(ROOM))
        assert not peers.intercept(link, RoomEnd(ROOM, True))
        assert peers.intercept(link, RoomJoin(ROOM))
        assert peers.intercept(link, RoomJoin(ROOM))  # a repeat while placing: dropped
        await _settle()
        assert holder.calls == 1
        holder.go.set()
        await _settle()
        assert shell.remote.got == [(link, RoomJoin(ROOM))]  # served by the cascade now
        assert peers.placed == 1
        assert not peers.intercept(link, RoomJoin(ROOM))  # live here: the cascade's

        other = os.urandom(16)
        holder.refusal = NodeError(MEETING_NO_ROOM, "nobody holds it")
        assert peers.intercept(link, RoomJoin(other))
        await _settle()
        assert link.outbox == [RoomRefused(other, MEETING_NO_ROOM)]
        assert shell.ends == [ROOM, other]

        holder.refusal = RuntimeError("a bug")  # refused too; the nursery lives on
        third = os.urandom(16)
        assert peers.intercept(link, RoomJoin(third))
        await _settle()
        assert link.outbox[-1] == RoomRefused(third, MEETING_NO_ROOM)
        nursery.cancel_scope.cancel()


async def test_a_link_gone_while_placing_is_not_served() -> None:
    shell = Shell()
    holder = Holder(shell)
    peers = PeerRooms(cast(Rooms, shell), cast(RoomPlacement, holder))
    link = KindLink("b.example")
    async with trio.open_nursery() as nursery:
        await nursery.start(peers.run)
        assert peers.intercept(link, RoomJoin(ROOM))
        await _settle()
        peers.link_down(link)
        holder.go.set()
        await _settle()
        assert shell.remote.got == []
        assert link.outbox == []
        assert shell.ends == [ROOM]  # the local room made for it ends if nothing holds it
        nursery.cancel_scope.cancel()


@dataclass
class Opener:
    link: KindLink

    async def room_link(self, peer: object) -> KindLink:
        return self.link


async def test_a_local_room_joined_at_a_replica_takes_a_peer_domain_but_no_replica() -> None:
    clock = Clock()
    meetings = MeetingService(MeetingLegs(os.urandom), domain=DOMAIN, now_ms=clock)
    upstream = KindLink(DOMAIN, kind="replica")
    meetings.remote.opener = Opener(upstream)
    peer = ReplicaPeer(X, "10.0.0.7", 7481)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(meetings.remote.enter_at, ROOM, DOMAIN, ROOM, peer)
        with trio.fail_after(STEP):
            while not upstream.outbox:  # noqa: ASYNC110 (the shell's state, polled)
                await trio.sleep(0.001)
        assert upstream.outbox == [RoomJoin(ROOM)]
        meetings.receive_link(upstream, RoomJoined(ROOM))
    assert meetings.remote.joined(ROOM)
    assert meetings.anchored(ROOM, KindLink("b.example"))  # a peer domain: a port here
    assert not meetings.anchored(ROOM, KindLink(DOMAIN, kind="replica"))  # joins the holder
    # the peer's port joins this replica's local room, which the holder's room contains
    domain_link = KindLink("b.example")
    meetings.receive_link(domain_link, RoomJoin(ROOM))
    assert domain_link.outbox[0] == RoomJoined(ROOM)
    assert meetings.cascade.hosting(ROOM)
    assert meetings.numbers().link_ports == 2
    assert meetings.numbers().peer_joins_placed == 0  # live here: nothing placed first
    upstream.outbox.clear()  # the peer's senders go on to the holder, as this replica's
    meetings.receive_link(domain_link, SendersAdded(ROOM, True, (LinkSender(1234, ()),)))
    assert upstream.outbox == [SendersAdded(ROOM, True, (LinkSender(1234, ()),))]


async def test_a_peer_link_has_a_bounded_number_of_joins_placed_at_once() -> None:
    shell = Shell()
    holder = Holder(shell)
    peers = PeerRooms(cast(Rooms, shell), cast(RoomPlacement, holder))
    link = KindLink("b.example")
    rooms = [bytes([i]) * 16 for i in range(MAX_PLACING + 1)]
    async with trio.open_nursery() as nursery:
        await nursery.start(peers.run)
        for room in rooms:
            assert peers.intercept(link, RoomJoin(room))
        await _settle()
        assert holder.calls == MAX_PLACING
        assert link.outbox == [RoomRefused(rooms[-1], MEETING_NO_ROOM)]  # at once
        assert peers.intercept(KindLink("c.example"), RoomJoin(rooms[-1]))  # another link's
        await _settle()
        assert holder.calls == MAX_PLACING + 1
        nursery.cancel_scope.cancel()


@dataclass
class Replicas:
    """A fake of ``MediaLinks.room_link`` to the holder: a new replica link per call,
    each ``RoomJoin`` on it answered ``RoomJoined`` by :meth:`answer`."""

    links: list[KindLink] = field(default_factory=list)

    async def room_link(self, peer: object) -> KindLink:
        self.links.append(KindLink(DOMAIN, kind="replica"))
        return self.links[-1]

    async def answer(self, meetings: MeetingService) -> None:
        while True:
            for link in self.links:
                joins = [m for m in link.outbox if isinstance(m, RoomJoin)]
                link.outbox.clear()
                for join in joins:
                    meetings.receive_link(link, RoomJoined(join.room))
            await trio.sleep(0.01)


async def test_a_local_room_held_only_for_a_peer_is_joined_again_when_its_upstream_goes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def now_ms() -> int:
        return T0 + int(trio.current_time() * 1000)

    store = MemoryStore()
    meetings = MeetingService(MeetingLegs(os.urandom), domain=DOMAIN, now_ms=now_ms)
    meetings.placement = RoomPlacement(store, Y, domain=DOMAIN, now_ms=now_ms)
    replicas = Replicas()
    meetings.remote.opener = replicas
    hour = 3_600_000
    await store.announce_media(X, "10.0.0.7", 7481, now_ms(), hour)
    assert await store.place_room(ROOM, X, now_ms(), hour) == X  # replica X holds the room
    peer_link = KindLink("b.example")
    async with trio.open_nursery() as nursery:
        await nursery.start(meetings.run)
        nursery.start_soon(replicas.answer, meetings)
        meetings.receive_link(peer_link, RoomJoin(ROOM))
        with trio.fail_after(STEP):
            while not peer_link.outbox:  # noqa: ASYNC110 (the shell's state, polled)
                await trio.sleep(0.01)
        assert peer_link.outbox == [RoomJoined(ROOM)]
        assert meetings.numbers().peer_joins_placed == 1  # /metrics
        assert len(replicas.links) == 1
        meetings.link_down(replicas.links[0])  # the upstream went; the peer's port stays
        assert meetings.cascade.hosting(ROOM)
        with trio.fail_after(STEP):
            while not meetings.remote.joined(ROOM):  # noqa: ASYNC110 (polled)
                await trio.sleep(0.01)
        assert len(replicas.links) == 2  # joined again at the holder, over a new link
        assert meetings.placement.held == set()  # never claimed here
        nursery.cancel_scope.cancel()
