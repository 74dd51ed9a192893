"""The meeting requests of ``/v1/client`` in-process (node.meetings_requests, the meeting
branches of node.calls.clients; issue 18): through a real ``Session`` of an in-memory relay,
WebSocket shells faked as lists of what was sent and pushed.

Checked: ``MeetingJoin`` answers a ``LegGrant``; ``LegAttach`` of that leg binds the
WebSocket into the room with its own sender id, and media read on it goes through the
room's core to the other participant's WebSocket (a foreign sender id is dropped and
counted); ``MeetingVideo`` turns into notices pushed to the sender; ``MeetingLeave`` is the
owner's only; an unbound leg expires and its owner is pushed ``LegEnded``; a closed
WebSocket leaves the room; without a call relay every request is ``call.unavailable``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from node.calls import CallRelay
from node.calls.clients import REPLICA_ID_BYTES, ClientLegs
from node.calls.shell import CallService
from node.errors import CALL_EXPIRED, CALL_NO_LEG, CALL_UNAVAILABLE
from node.relay import Relay
from node.session import Session
from node.sfu.model import DropReason
from node.sfu.rooms import MeetingLegs
from node.sfu.shell import MeetingService
from tests.node.calls.helpers import T0, Draws
from tests.node.calls.test_clients import Clock, Shell
from tests.node.harness import DOMAIN, Device, call, enroll, make_relay
from tests.node.sfu.kit import audio, video
from tests.node.sfu.meetkit import sender_of
from transport import QuicIdentity
from wire.relay import (
    Error,
    LegAttach,
    LegAttached,
    LegEnded,
    LegGrant,
    MeetingJoin,
    MeetingKeyframe,
    MeetingLayer,
    MeetingLayerSpec,
    MeetingLeave,
    MeetingVideo,
    Ok,
)

IDENTITY = QuicIdentity.generate()
ALLOCATION_MS = 1_000
STEP = 3.0
ROOM = b"\x07" * 16
LAYERS = (MeetingLayerSpec(180, 150), MeetingLayerSpec(360, 500))


@dataclass
class Node:
    relay: Relay
    meetings: MeetingService
    clock: Clock

    async def account(self, name: str) -> tuple[Session, Shell]:
        session = await enroll(self.relay, Device.create(name))
        shell = Shell()
        session.shell = shell
        return session, shell


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    clock = Clock()
    relay = make_relay()
    service = CallService(CallRelay(Draws()), IDENTITY, now_ms=clock)
    legs = ClientLegs(
        service, relay.ports.call_legs, domain=DOMAIN, replica=b"r" * REPLICA_ID_BYTES, now_ms=clock
    )
    meetings = MeetingService(
        MeetingLegs(Draws(), allocation_timeout_ms=ALLOCATION_MS), now_ms=clock, tick_interval=0.01
    )
    meetings.on_ended = legs.meeting_ended
    service.route_meetings(meetings)
    legs.meetings = meetings
    relay.calls = legs
    async with trio.open_nursery() as nursery:
        await nursery.start(legs.run)
        await nursery.start(meetings.run)
        yield Node(relay, meetings, clock)
        nursery.cancel_scope.cancel()


async def _one(session: Session, frame: object) -> object:
    (answer,) = await call(session, frame)
    return answer


async def _join(
    session: Session, layers: tuple[MeetingLayerSpec, ...] = ()
) -> tuple[LegGrant, int]:
    grant = await _one(session, MeetingJoin(1, ROOM, layers))
    assert isinstance(grant, LegGrant)
    attached = await _one(session, LegAttach(2, grant.leg_id, grant.leg_secret))
    assert isinstance(attached, LegAttached)
    assert attached.leg_id == grant.leg_id
    return grant, attached.sender


async def _until(condition: object) -> None:
    with trio.fail_after(STEP):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_websockets_meet_through_the_room(node: Node) -> None:
    abe, abe_shell = await node.account("abe")
    bea, bea_shell = await node.account("bea")
    abe_grant, abe_sender = await _join(abe, LAYERS)
    bea_grant, bea_sender = await _join(bea)
    assert abe_sender != bea_sender
    assert await _one(bea, MeetingVideo(3, bea_grant.leg_id, 1, 360, 4000)) == Ok(3)
    await _until(lambda: MeetingKeyframe(abe_grant.leg_id, abe_sender, 1) in abe_shell.pushed)
    layers = {p.layer: p.active for p in abe_shell.pushed if isinstance(p, MeetingLayer)}
    assert layers == {0: False, 1: True}
    core = node.meetings.rooms[ROOM]
    await abe.media([audio(abe_sender), video(abe_sender, 1, keyframe=True), audio(bea_sender)])
    node.clock.now = T0 + 400
    await trio.testing.wait_all_tasks_blocked()  # (each WebSocket's writer task)
    assert [sender_of(d) for d in bea_shell.sent][-1:] == [abe_sender]  # the video, switched
    assert core.stats().drops[DropReason.STREAM_NOT_BOUND] == 1
    assert abe_shell.sent == []
    refused = await _one(bea, MeetingLeave(4, abe_grant.leg_id))
    assert isinstance(refused, Error)
    assert refused.code == CALL_NO_LEG
    assert await _one(abe, MeetingLeave(5, abe_grant.leg_id)) == Ok(5)
    assert core.stats().participants == 1
    bea.detach()
    await _until(lambda: node.meetings.numbers().participants == 0)


async def test_an_unbound_leg_expires_and_its_owner_is_told(node: Node) -> None:
    cid, cid_shell = await node.account("cid")
    grant = await _one(cid, MeetingJoin(1, ROOM, ()))
    assert isinstance(grant, LegGrant)
    node.clock.now = T0 + ALLOCATION_MS
    await _until(lambda: LegEnded(grant.leg_id, CALL_EXPIRED) in cid_shell.pushed)
    assert node.meetings.numbers().rooms == 0
    refused = await _one(cid, LegAttach(2, grant.leg_id, grant.leg_secret))
    assert isinstance(refused, Error)
    assert refused.code == CALL_NO_LEG


async def test_without_a_call_relay_meeting_requests_are_unavailable() -> None:
    session = await enroll(make_relay(), Device.create("dee"))
    session.shell = Shell()
    for frame in (
        MeetingJoin(1, ROOM, ()),
        MeetingVideo(2, bytes(16), 1, 180, 0),
        MeetingLeave(3, bytes(16)),
    ):
        refused = await _one(session, frame)
        assert isinstance(refused, Error)
        assert (refused.id, refused.code) == (frame.id, CALL_UNAVAILABLE)
