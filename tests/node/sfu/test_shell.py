"""The SFU's trio shell over real loopback QUIC (node.sfu.shell; issue 18): meeting legs
bind their QUIC connections through the call relay's ``MediaBind``, and a room of ten
replaying the fixture's Opus frames, four of them speaking, gives every receiver the
dominant speaker and the three loudest others, byte for byte; silence goes to nobody; a
datagram under another participant's sender id is dropped and counted. Video requests
turn into keyframe requests and layer pauses on the sender's control stream; a leave
closes the connection and an emptied room ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from node.calls import CallRelay
from node.calls.legs import Leg
from node.calls.shell import CallService
from node.errors import CALL_BAD_SECRET
from node.sfu.model import DEFAULT_LAYERS, DropReason, LayerSpec
from node.sfu.rooms import MeetingLegs
from node.sfu.shell import NO_ROOM, SEND_FAILED, MeetingService
from tests.node.calls.helpers import Draws
from tests.node.sfu.kit import video
from tests.node.sfu.meetkit import Participant, talk
from transport import MediaTransport, QuicChannel, QuicIdentity, TransportClosed, connect_quic
from wire import encode
from wire.media_control import (
    MediaBind,
    MediaBound,
    MediaKeyframe,
    MediaLayer,
    MediaRefused,
    MediaVideo,
    decode_bind_answer,
    decode_notice,
)
from wire.relay_meetings import MeetingKeyframe, MeetingLayer

LOOPBACK = "127.0.0.1"
STEP_TIMEOUT = 5.0
TICK = 0.05
ROOM = b"\x42" * 16
IDENTITY = QuicIdentity.generate()
SPEAKER_LEVELS = (5, 15, 25, 35)  # RFC 6464 -dBov: the first is the loudest
PARTICIPANTS = 10
WARM_UP_ROUNDS = 60  # 1.2 s: four speaker recomputes
MEASURED_ROUNDS = 25


@dataclass
class Node:
    nursery: trio.Nursery
    meetings: MeetingService
    port: int

    async def connect(self) -> QuicChannel:
        with trio.fail_after(STEP_TIMEOUT):
            return await connect_quic(self.nursery, LOOPBACK, self.port, pin=IDENTITY.pin)

    async def member(
        self, owner: str, layers: tuple[LayerSpec, ...] = ()
    ) -> tuple[Leg, Participant]:
        leg = self.meetings.join(owner, ROOM, layers)
        channel = await self.connect()
        answer = await bind(channel, leg.leg_id, leg.leg_secret)
        assert isinstance(answer, MediaBound)
        assert answer.leg_id == leg.leg_id
        return leg, Participant(channel, answer.sender)


@asynccontextmanager
async def running_node() -> AsyncIterator[Node]:
    service = CallService(CallRelay(Draws()), IDENTITY)
    meetings = MeetingService(MeetingLegs(Draws()), tick_interval=TICK)
    service.route_meetings(meetings)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(service.serve, LOOPBACK, 0)
        await nursery.start(meetings.run)
        yield Node(nursery, meetings, address[1])
        nursery.cancel_scope.cancel()


async def bind(channel: QuicChannel, leg_id: bytes, secret: bytes) -> MediaBound | MediaRefused:
    with trio.fail_after(STEP_TIMEOUT):
        await channel.send_control(encode(MediaBind(leg_id, secret)))
        return decode_bind_answer(await channel.receive_control())


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(STEP_TIMEOUT):
        while not condition():  # noqa: ASYNC110 - polled state, no event to wait on
            await trio.sleep(0.01)


async def test_every_receiver_gets_the_dominant_and_the_three_loudest() -> None:
    async with running_node() as node:
        people = [(await node.member(f"owner-{i}"))[1] for i in range(PARTICIPANTS)]
        speakers = people[:4]
        for p, level in zip(speakers, SPEAKER_LEVELS, strict=True):
            p.level = level
        for p in people:
            node.nursery.start_soon(p.listen)
        sent: set[bytes] = set()
        now = await talk(people, WARM_UP_ROUNDS, sent, 0.0)
        core = node.meetings.rooms[ROOM]
        assert core.speakers.dominant == speakers[0].sender
        assert core.speakers.ranked == tuple(p.sender for p in speakers)
        await trio.sleep(0.3)  # what is in flight lands before the measured rounds
        for p in people:
            p.reset()
        # one listener forges a datagram under the dominant speaker's sender id
        forger, victim = people[-1], speakers[0]
        real = forger.audio(now)[0]
        forged = real[:3] + victim.sender.to_bytes(4, "big") + real[7:]
        drops = core.stats().drops
        before, unselected = drops[DropReason.STREAM_NOT_BOUND], drops[DropReason.NOT_SELECTED]
        await forger.media.send_datagrams([forged])
        await talk(people, MEASURED_ROUNDS, sent, now + 1)
        await until(lambda: all(sum(p.heard.values()) >= 3 * MEASURED_ROUNDS for p in people))
        await trio.sleep(0.2)
        stats = core.stats()
        everyone = {p.sender for p in speakers}
        for p in people:
            assert set(p.heard) == everyone - {p.sender}, p.sender
            assert all(data in sent for data in p.received)  # forwarded unchanged
            assert forged not in p.received
        assert stats.drops[DropReason.STREAM_NOT_BOUND] == before + 1
        assert stats.drops[DropReason.SILENCE] >= (PARTICIPANTS - 4) * MEASURED_ROUNDS
        assert stats.drops[DropReason.NOT_SELECTED] == unselected  # every voice goes out
        assert stats.participants == PARTICIPANTS
        numbers = node.meetings.numbers()
        assert (numbers.rooms, numbers.participants) == (1, PARTICIPANTS)
        assert numbers.drops[str(DropReason.STREAM_NOT_BOUND)] == before + 1
        assert numbers.drops[SEND_FAILED] == numbers.drops[NO_ROOM] == 0
        assert numbers.forwarded == stats.forwarded > 0


async def test_video_requests_become_keyframe_requests_and_layer_pauses() -> None:
    async with running_node() as node:
        _, alice = await node.member("alice", DEFAULT_LAYERS)
        _, bob = await node.member("bob")
        node.nursery.start_soon(alice.read_control)
        node.nursery.start_soon(bob.listen)
        await bob.media.send_control(encode(MediaVideo(1, 180, 4000)))

        def notices() -> list[MediaLayer | MediaKeyframe]:
            return [decode_notice(data) for data in alice.controls]

        def layer_states() -> dict[int, bool]:
            return {n.layer: n.active for n in notices() if isinstance(n, MediaLayer)}

        await until(lambda: MediaKeyframe(alice.sender, 0) in notices())
        await until(lambda: layer_states() == {0: True, 1: False, 2: False})
        assert all(n.sender == alice.sender for n in notices())
        # the keyframe of layer 0 switches Bob to it; layer 1 goes to nobody
        frames = [video(alice.sender, 0, keyframe=True), video(alice.sender, 1, keyframe=True)]
        await alice.media.send_datagrams(frames)
        await until(lambda: bob.received == frames[:1])
        assert node.meetings.rooms[ROOM].stats().switches == 1


async def test_a_refused_bind_a_leave_and_the_room_ending() -> None:
    async with running_node() as node:
        leg = node.meetings.join("carol", ROOM, ())
        channel = await node.connect()
        refused = await bind(channel, leg.leg_id, b"\x00" * 32)
        assert isinstance(refused, MediaRefused)
        assert refused.code == CALL_BAD_SECRET
        assert node.meetings.numbers().refused == 1
        carol_leg, carol = await node.member("carol")
        dave_leg, dave = await node.member("dave")
        node.nursery.start_soon(dave.listen)
        assert node.meetings.numbers().participants == 2
        node.meetings.leave("carol", carol_leg.leg_id)
        await closes(carol.media)
        assert node.meetings.numbers().participants == 1
        node.meetings.leave("carol", leg.leg_id)
        node.meetings.leave("dave", dave_leg.leg_id)
        await until(lambda: node.meetings.numbers().rooms == 0)
        assert ROOM not in node.meetings.rooms


async def test_a_rebind_replaces_the_connection_in_the_room() -> None:
    async with running_node() as node:
        leg, first = await node.member("erin")
        second_channel = await node.connect()
        answer = await bind(second_channel, leg.leg_id, leg.leg_secret)
        assert isinstance(answer, MediaBound)
        assert answer.sender != first.sender
        core = node.meetings.rooms[ROOM]
        assert core.stats().participants == 1
        await closes(first.media)


async def closes(channel: MediaTransport) -> None:
    """Wait until the node closed ``channel``."""
    with trio.fail_after(STEP_TIMEOUT):
        while True:
            try:
                await channel.receive_datagram_batch()
            except TransportClosed:
                return


class FakeShell:
    """A client WebSocket: what it is pushed, and the datagrams its sink is given."""

    def __init__(self) -> None:
        self.pushed: list[object] = []
        self.sent: list[bytes] = []

    def push(self, frame: object) -> None:
        self.pushed.append(frame)

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        self.sent += payloads


async def test_the_websocket_fallback_gets_notices_as_pushes() -> None:
    async with running_node() as node:
        leg = node.meetings.join("frank", ROOM, DEFAULT_LAYERS)
        shell = FakeShell()
        bound = node.meetings.bind_websocket(shell, leg.leg_id, leg.leg_secret, shell)  # type: ignore[arg-type]
        assert node.meetings.carries(shell)
        _, gina = await node.member("gina")
        node.nursery.start_soon(gina.listen)
        await gina.media.send_control(encode(MediaVideo(1, 360, 4000)))
        await until(lambda: MeetingKeyframe(leg.leg_id, bound.sender, 1) in shell.pushed)
        layers = {f.layer: f.active for f in shell.pushed if isinstance(f, MeetingLayer)}
        assert layers == {0: False, 1: True, 2: False}
        frame = video(bound.sender, 1, keyframe=True)
        await node.meetings.forward(shell, [frame, video(bound.sender ^ 1, 1, keyframe=True)])
        await until(lambda: gina.received == [frame])
        assert node.meetings.numbers().drops[str(DropReason.STREAM_NOT_BOUND)] == 1
        node.meetings.gone(shell)
        assert not node.meetings.carries(shell)
        assert node.meetings.numbers().participants == 1
