"""A group's meeting on a logged-in :class:`~client.app.Client` (issue 18, "meetings of
sealrelay groups"): what ``sealrelay client meet`` runs, and what a program that embeds the
client runs in its own process.

    meet = group_meet(client, group_id, video=False, seconds=30, emit=print)
    async with client.online():
        outcome = await meet.run()
    meet.summary()

It wires the pure :class:`~client.meetings.group.GroupMeeting` of this device to the
client's sealed pairwise sending (:class:`~client.meetings.net.MeetingNet`), its inbox of
meeting notes and its node (:class:`ClientNode`: leg requests on the client WebSocket, media
over QUIC or the WebSocket fallback). Call it before the client goes online, so the notes
that come while it drains its mailbox reach the meeting.
"""

from __future__ import annotations

from collections.abc import Callable

from client.app import Client
from client.meetings.group import Event, GroupMeeting, Me
from client.meetings.meet import Emit, Meet
from client.meetings.net import MeetingInbox, MeetingNet
from transport.base import MediaTransport
from wire.relay import LegGrant


class ClientNode:
    """:class:`client.meetings.meet.Node` over a :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def request(self, frame: object) -> object:
        return await self._client.link.request(frame)

    async def media_quic(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        return await self._client.media_quic(grant)

    async def media_websocket(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        return await self._client.media_websocket(grant)


def group_members(client: Client, group_id: bytes) -> list[str]:
    """The addresses of the group's current members, as this device knows them."""
    ng = client.groups.get(group_id)
    if ng is None or ng.group is None:
        return []
    return list(ng.group.state.members)


def group_meet(
    client: Client,
    group_id: bytes,
    *,
    video: bool,
    seconds: float,
    emit: Emit,
    transport: str = "quic",
) -> Meet:
    """The meeting of group ``group_id`` for this device, ready to :meth:`Meet.run`."""
    device = client.device
    me = Me(
        device.address,
        device.device_id,
        device.identity.public.sig,
        device.identity,
        device.suite.sig.verify,
    )
    core = GroupMeeting(
        group_id, me, lambda: group_members(client, group_id), client.entropy.random_bytes
    )
    inbox = MeetingInbox()
    client.receiver.meetings = inbox

    def net(on_event: Callable[[Event], object]) -> MeetingNet:
        return MeetingNet(
            core,
            inbox,
            client.sendpath,
            reply=lambda: (client.info.delivery_token, client.info.mailbox),
            clock=client.clock,
            on_event=on_event,
            shared=(client.sendpath, client.entropy),
        )

    return Meet(
        net, ClientNode(client), video=video, seconds=seconds, emit=emit, transport=transport
    )
