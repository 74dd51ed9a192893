"""The meeting shell's cascade (node.sfu.shell, node.sfu.linkrooms; issue 18, "across
domains, cascaded") with two services and an in-memory link between them: a join of a
room anchored at the other domain goes over the link, media crosses it once through both
cores, datagrams of no meeting sender are left for the call relay, refusals carry their
codes, and the link going takes the far senders out of the rooms."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import pytest
import trio

from node.errors import CALL_UNAVAILABLE, MEETING_NO_ROOM, NodeError
from node.sfu.cascade import room_key
from node.sfu.model import LayerSpec, VideoRequest
from node.sfu.rooms import MeetingLegs
from node.sfu.shell import MeetingService
from tests.node.sfu.kit import T0, audio, video
from wire import encode
from wire.media_link import LinkRoomMessage, decode_link_traffic
from wire.relay_meetings import MeetingKeyframe, MeetingLayer

A: Final = "a.example"
B: Final = "b.example"
ROOM: Final = b"\x42" * 16
T = TypeVar("T")


@dataclass(eq=False)
class Sink:
    """A participant's (or a link's) media out: what was sent to it."""

    sent: list[bytes] = field(default_factory=list)

    async def send_datagrams(self, batch: Sequence[bytes]) -> None:
        self.sent += batch


@dataclass(eq=False)
class Shell:
    """A client WebSocket: its pushes."""

    pushed: list[object] = field(default_factory=list)

    def push(self, frame: object) -> None:
        self.pushed.append(frame)


@dataclass(eq=False)
class Link:
    """One side of an in-memory media link; messages go through the wire codec."""

    domain: str
    channel: Sink = field(default_factory=Sink)
    outbox: list[LinkRoomMessage] = field(default_factory=list)

    def send(self, message: LinkRoomMessage) -> None:
        self.outbox.append(decode_link_traffic(encode(message)))  # type: ignore[arg-type]


class World:
    """Node ``a`` (the anchor) and node ``b``, one link between them, one clock."""

    def __init__(self) -> None:
        self.now = T0
        self.a = MeetingService(MeetingLegs(os.urandom), domain=A, now_ms=lambda: self.now)
        self.b = MeetingService(MeetingLegs(os.urandom), domain=B, now_ms=lambda: self.now)
        self.at_a, self.at_b = Link(B), Link(A)  # a's link to b, b's link to a
        self.b.remote.opener = self
        self.rest: list[bytes] = []

    async def room_link(self, domain: str) -> Link:
        assert domain == A
        return self.at_b

    async def pump(self) -> None:
        """Carry messages and datagrams both ways until the link is quiet."""
        pairs = ((self.at_a, self.b, self.at_b), (self.at_b, self.a, self.at_a))
        while any(link.outbox or link.channel.sent for link, _, _ in pairs):
            for source, target, arrival in pairs:
                messages, source.outbox = source.outbox, []
                for message in messages:
                    target.receive_link(arrival, message)
                datagrams, source.channel.sent = source.channel.sent, []
                if datagrams:
                    self.rest += await target.forward_link(arrival, datagrams)

    async def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.now += 100
            await self.a.tick()
            await self.b.tick()
            await self.pump()

    async def during_pumps(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` while the link is pumped; its result, or its error."""
        out: list[T] = []
        errors: list[Exception] = []
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                try:
                    out.append(await work())
                except Exception as exc:
                    errors.append(exc)
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(run)
            while True:
                await self.pump()
                await trio.sleep(0.001)
        if errors:
            raise errors[0]
        return out[0]


async def _seat(service: MeetingService, owner: str, anchor: str, world: World) -> tuple[Sink, int]:
    """A participant of ``owner`` bound over a fake WebSocket: its sink and sender id."""
    leg = await world.during_pumps(lambda: service.join_at(owner, anchor, ROOM, ()))
    sink = Sink()
    bound = service.bind_websocket(Shell(), leg.leg_id, leg.leg_secret, sink)
    await world.pump()
    return sink, bound.sender


def _leg_of(service: MeetingService, sender: int) -> bytes:
    return service.legs.legs_on(_conn(service, sender))[0].leg_id


async def _meeting() -> tuple[World, list[tuple[Sink, int]], list[tuple[Sink, int]]]:
    world = World()
    at_a = [await _seat(world.a, f"a{i}", A, world) for i in range(2)]
    at_b = [await _seat(world.b, f"b{i}", A, world) for i in range(3)]
    return world, at_a, at_b


async def test_media_crosses_the_link_once_and_reaches_every_far_participant() -> None:
    world, at_a, at_b = await _meeting()
    key = room_key(A, ROOM)
    assert world.a.cascade.linked(ROOM)
    assert world.b.cascade.linked(key)
    assert {s for s, _c, _l in world.b.rooms[key].senders()} == {s for _, s in at_a + at_b}
    speaker_sink, speaker = at_a[0]
    for _ in range(6):
        for _ in range(10):
            await world.a.forward(_conn(world.a, speaker), [audio(speaker, 10)])
        await world.tick(3)
    # the link is a port of the room on both sides, never one of its participants
    assert (world.a.numbers().participants, world.a.numbers().link_ports) == (2, 1)
    assert (world.b.numbers().participants, world.b.numbers().link_ports) == (3, 1)
    for sink, _ in at_b:
        sink.sent.clear()
    crossed = world.a.remote.datagrams["out"]
    for _ in range(5):
        await world.a.forward(_conn(world.a, speaker), [audio(speaker, 10)])
    await world.pump()
    assert world.a.remote.datagrams["out"] - crossed == 5  # one copy for three listeners
    assert all(len(sink.sent) == 5 for sink, _ in at_b)
    assert speaker_sink.sent == []  # never its own
    stats = world.b.numbers()
    assert stats.link_bytes["in"] == world.a.numbers().link_bytes["out"] > 0
    assert stats.delivered_bytes >= 3 * 5 * len(audio(speaker, 10))


async def test_a_video_asked_for_over_the_link_is_resumed_and_keyframed_at_the_sender() -> None:
    world = World()
    host_leg = world.a.join("host", ROOM, (LayerSpec(180, 150),))
    shell = Shell()
    sink = Sink()
    bound = world.a.bind_websocket(shell, host_leg.leg_id, host_leg.leg_secret, sink)
    await world.tick(2)
    shell.pushed.clear()
    watcher, far = await _seat(world.b, "far", A, world)
    world.b.request("far", _leg_of(world.b, far), VideoRequest(1, 180, 1000))
    await world.tick(3)
    assert MeetingKeyframe(host_leg.leg_id, bound.sender, 0) in shell.pushed
    layers = [p for p in shell.pushed if isinstance(p, MeetingLayer)]
    assert layers[-1] == MeetingLayer(host_leg.leg_id, bound.sender, 0, True)  # resumed
    await world.a.forward(shell, [video(bound.sender, 0, keyframe=True)])
    await world.pump()
    assert watcher.sent == [video(bound.sender, 0, keyframe=True)]


async def test_datagrams_of_no_meeting_sender_are_left_for_the_call_relay() -> None:
    world, _at_a, _at_b = await _meeting()
    stray = audio(0xDEAD, 10)
    assert await world.b.forward_link(world.at_b, [stray]) == [stray]


async def test_joins_are_refused_with_codes() -> None:
    world = World()
    with pytest.raises(NodeError) as refused:
        await world.during_pumps(lambda: world.b.join_at("b0", A, ROOM, ()))
    assert refused.value.code == MEETING_NO_ROOM
    assert not world.b.remote.is_remote(room_key(A, ROOM))
    alone = MeetingService(MeetingLegs(os.urandom), domain=B, now_ms=lambda: T0)
    with pytest.raises(NodeError) as unavailable:
        await alone.join_at("b0", A, ROOM, ())
    assert unavailable.value.code == CALL_UNAVAILABLE
    own = await alone.join_at("b0", B.upper(), ROOM, ())  # its own domain: a local room
    assert alone.legs.get(own.leg_id) is not None


async def test_the_link_going_takes_the_far_senders_out_and_a_new_one_joins_again() -> None:
    world, at_a, at_b = await _meeting()
    world.a.link_down(world.at_a)
    world.b.link_down(world.at_b)
    key = room_key(A, ROOM)
    assert {s for s, _c, _l in world.a.rooms[ROOM].senders()} == {s for _, s in at_a}
    assert {s for s, _c, _l in world.b.rooms[key].senders()} == {s for _, s in at_b}
    assert not world.a.cascade.linked(ROOM)
    assert world.b.remote.orphans(world.b.legs.has_room) == [(A, ROOM)]
    world.at_a, world.at_b = Link(B), Link(A)  # a new link; b joins again
    await world.during_pumps(lambda: world.b.remote.enter(A, ROOM))
    assert world.b.remote.orphans(world.b.legs.has_room) == []
    everyone = {s for _, s in at_a + at_b}
    assert {s for s, _c, _l in world.a.rooms[ROOM].senders()} == everyone
    assert {s for s, _c, _l in world.b.rooms[key].senders()} == everyone
    world.a.link_down(world.at_a)
    for i in range(2):
        world.a.leave(f"a{i}", _leg_of(world.a, at_a[i][1]))
    assert ROOM not in world.a.rooms


async def test_the_last_far_participant_leaving_ends_the_room_on_both_sides() -> None:
    world = World()
    await _seat(world.a, "host", A, world)
    _, far = await _seat(world.b, "far", A, world)
    key = room_key(A, ROOM)
    world.b.leave("far", _leg_of(world.b, far))
    await world.pump()
    assert key not in world.b.rooms
    assert not world.a.cascade.linked(ROOM)
    assert ROOM in world.a.rooms  # the host is still there


def _conn(service: MeetingService, sender: int) -> object:
    """The connection that owns ``sender`` in any room of ``service``."""
    for core in service.rooms.values():
        owner = core.owner(sender)
        if owner is not None:
            return owner
    raise AssertionError(sender)
