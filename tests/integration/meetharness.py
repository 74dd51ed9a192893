"""Meetings of a group run in the test process as ``sealrelay client meet`` runs them
(``client.meetings.meet.Meet`` over the client library: signalling and the key schedule as
pairwise sealed messages through the node, media over QUIC to the node's SFU)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from client.app import Client
from client.meetings.group import Event, GroupMeeting, Me
from client.meetings.meet import Meet
from client.meetings.net import MeetingInbox, MeetingNet
from transport.base import MediaTransport
from wire.relay import LegGrant


class MeetNode:
    """``client.meetings.meet.Node`` over a :class:`Client` (as ``client.cli_meet``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def request(self, frame: object) -> object:
        return await self._client.link.request(frame)

    async def media_quic(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        return await self._client.media_quic(grant)

    async def media_websocket(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        return await self._client.media_websocket(grant)


@dataclass
class Seat:
    """One member's ``meet`` in this process."""

    client: Client
    meet: Meet
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def core(self) -> GroupMeeting:
        return self.meet.core

    def opened(self) -> tuple[int, int, int]:
        """(frames that decrypted, frames under no key held, decryption failures)."""
        media = self.meet.rooms[-1].summary()
        decrypted = sum(int(media[k]) for k in ("frames_received", "frames_late"))
        decrypted += int(media["digest_mismatches"])
        return decrypted, int(media["no_key"]), int(media["decrypt_failures"])


def seat(client: Client, group: bytes, seconds: float) -> Seat:
    """``client``'s ``meet`` of ``group`` for ``seconds`` of media, run in this process."""
    device = client.device
    me = Me(
        device.address,
        device.device_id,
        device.identity.public.sig,
        device.identity,
        device.suite.sig.verify,
    )

    def members() -> list[str]:
        ng = client.groups.get(group)
        return [] if ng is None or ng.group is None else list(ng.group.state.members)

    core = GroupMeeting(group, me, members, client.entropy.random_bytes)
    inbox = MeetingInbox()
    client.receiver.meetings = inbox
    lines: list[dict[str, Any]] = []

    def net(on_event: Callable[[Event], object]) -> MeetingNet:
        return MeetingNet(
            core,
            inbox,
            client.sendpath,
            reply=lambda: (client.info.delivery_token, client.info.mailbox),
            clock=client.clock,
            on_event=on_event,
        )

    meet = Meet(net, MeetNode(client), video=False, seconds=seconds, emit=lines.append)
    return Seat(client, meet, lines)
