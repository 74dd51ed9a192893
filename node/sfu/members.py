"""The media connections of the meeting shell (``node.sfu.shell``; DESIGN section 9; issue
18): where a connection's copies go and how its notices reach it (``MediaLayer`` /
``MediaKeyframe`` on a QUIC control stream, ``MeetingLayer`` / ``MeetingKeyframe`` pushed on
the WebSocket fallback), and the ``MediaVideo`` requests read from a control stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from node.sfu.model import KeyframeRequest, LayerNotice, Notice, VideoRequest
from node.sfu.rooms import MeetingLeg
from transport import MediaChannel, MediaTransport, TransportError
from wire import WireError, encode
from wire.media_control import (
    CLOSE_MALFORMED_CONTROL,
    MediaKeyframe,
    MediaLayer,
    decode_meeting_control,
)
from wire.relay_meetings import MeetingKeyframe, MeetingLayer


class PushShell(Protocol):
    """What a client WebSocket offers here: a frame pushed unasked (``ClientShell``)."""

    def __hash__(self) -> int: ...

    def push(self, frame: object) -> None: ...


@dataclass(slots=True, eq=False)
class Member:
    """A media connection in the meetings: where its copies go and how it gets notices."""

    out: MediaTransport | None
    quic: MediaChannel | None
    shell: PushShell | None
    senders: dict[int, MeetingLeg] = field(default_factory=dict)

    async def notify(self, notice: Notice) -> None:
        """Send ``notice`` about one of this connection's senders (if it still has it)."""
        leg = self.senders.get(notice.sender)
        if leg is None:
            return
        if self.quic is not None:
            message: MediaLayer | MediaKeyframe
            if isinstance(notice, LayerNotice):
                message = MediaLayer(notice.sender, notice.layer, notice.active)
            else:
                message = MediaKeyframe(notice.sender, notice.layer)
            await send_control(self.quic, encode(message))
        elif self.shell is not None:
            self.shell.push(push_of(notice, leg.leg_id))


def push_of(notice: Notice, leg_id: bytes) -> MeetingLayer | MeetingKeyframe:
    """The WebSocket push of ``notice`` for the leg ``leg_id``."""
    if isinstance(notice, KeyframeRequest):
        return MeetingKeyframe(leg_id, notice.sender, notice.layer)
    return MeetingLayer(leg_id, notice.sender, notice.layer, notice.active)


async def send_control(channel: MediaChannel, message: bytes) -> bool:
    """Send ``message`` on ``channel``'s control stream; False if it has closed."""
    try:
        await channel.send_control(message)
    except TransportError:
        return False
    return True


async def read_requests(
    channel: MediaChannel, scope: trio.CancelScope, apply: Callable[[VideoRequest], object]
) -> None:
    """``apply`` each ``MediaVideo`` request read from ``channel``'s control stream until it
    closes; anything else closes the connection and cancels ``scope``."""
    while True:
        try:
            data = await channel.receive_control()
        except TransportError:
            return
        try:
            video = decode_meeting_control(data)
            request = VideoRequest(video.max_videos, video.max_height, video.budget_kbps)
        except (WireError, ValueError):
            channel.close(CLOSE_MALFORMED_CONTROL, "malformed control message")
            scope.cancel()
            return
        apply(request)
