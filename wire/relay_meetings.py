"""Meeting legs on the client protocol (``wire.relay``; DESIGN section 9; issue 18, "a
selective forwarding unit"): a client asks its own node, over its authenticated
``/v1/client`` WebSocket, for a leg in a meeting *room*. Import these frames from
``wire.relay``.

    client -> its node   MeetingJoin{id, room, layers}   a leg in room ``room``: 16 random
                                                         bytes the host client chose and
                                                         shares end to end with the group
                                                         (the node never learns the group)
    client -> its node   MeetingJoinAt{id, room, layers, anchor}   the same, in the room
                                                         anchored at the node of domain
                                                         ``anchor`` (the host's): the own
                                                         node joins it there over its media
                                                         link (a cascade); the own domain
                                                         or empty: as ``MeetingJoin``
    node -> client       LegGrant{id, leg_id, leg_secret}  as for a call leg
    client -> its node   MeetingVideo{id, leg_id, ...}   the videos this participant wants
                                                         (``node.sfu.VideoRequest``) -> Ok
    client -> its node   MeetingLeave{id, leg_id}        -> Ok; the leg and its media end

The leg is bound to a media connection exactly as a call leg is: ``MediaBind`` first on a
QUIC connection (``wire.media_control``), or ``LegAttach`` on this WebSocket (the fallback),
so one media code path carries calls and meetings. The bound connection's ``sender`` id is
a fresh random draw for that binding, unique in the room.

Notices to a sender (``node.sfu.LayerNotice``, ``node.sfu.KeyframeRequest``) travel on the
leg's *media connection*: on QUIC its control stream (``MediaLayer``, ``MediaKeyframe`` in
``wire.media_control``), on the fallback this WebSocket, as the pushes
:class:`MeetingLayer` and :class:`MeetingKeyframe` with the same fields and the leg id (one
WebSocket may carry several legs). Why the media connection and not this WebSocket: the
notices are about that connection's streams and follow its path hop by hop; in cluster mode
and across domains (a cascade) the replica holding the room is the one the media reaches,
not necessarily the one holding this WebSocket. The node pushes ``LegEnded`` (reason
``call.expired``) when a meeting leg ends other than by its own ``MeetingLeave``.
"""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

from wire.calls import LegId
from wire.relay_common import Domain, RequestId
from wire.schema import message
from wire.types import U8, U16, U32, Bytes16, MaxLen

MAX_LAYERS: Final = 3
"""Simulcast layers a participant may declare (the ones a sender publishes)."""
MAX_VIDEOS: Final = 32
"""Most videos a participant may ask for (``node.sfu.model.MAX_VIDEOS``)."""
MAX_HEIGHT: Final = 4320
"""Largest height in pixels a layer may declare or a participant may ask for."""

RoomId: TypeAlias = Bytes16
"""A meeting room on a node: 16 random bytes chosen by the host client."""


@message("relay.meeting_layer_spec")
class MeetingLayerSpec:
    """One simulcast layer the participant will send: frame ``height`` and target ``kbps``."""

    height: U16
    kbps: U32

    def __post_init__(self) -> None:
        if not 0 < self.height <= MAX_HEIGHT or self.kbps == 0:
            raise ValueError("a layer has a height in 1..4320 and a positive bitrate")


@message("relay.meeting_join")
class MeetingJoin:
    """A fresh leg in room ``room``, sending the simulcast ``layers`` (lowest first;
    empty: audio only); answered ``LegGrant``."""

    id: RequestId
    room: RoomId
    layers: Annotated[tuple[MeetingLayerSpec, ...], MaxLen(MAX_LAYERS)]

    def __post_init__(self) -> None:
        for low, high in zip(self.layers, self.layers[1:], strict=False):
            if not (low.height < high.height and low.kbps < high.kbps):
                raise ValueError("simulcast layers go from lowest to highest")


@message("relay.meeting_join_at")
class MeetingJoinAt:
    """:class:`MeetingJoin` in the room ``room`` anchored at ``anchor``'s node (the domain
    of the host's address; empty or this node's domain: a room of this node). A new
    request rather than a field of ``MeetingJoin``, whose wire carries every field: an
    older node would refuse the field, and this one an older client without it."""

    id: RequestId
    room: RoomId
    layers: Annotated[tuple[MeetingLayerSpec, ...], MaxLen(MAX_LAYERS)]
    anchor: Domain

    def __post_init__(self) -> None:
        for low, high in zip(self.layers, self.layers[1:], strict=False):
            if not (low.height < high.height and low.kbps < high.kbps):
                raise ValueError("simulcast layers go from lowest to highest")


@message("relay.meeting_leave")
class MeetingLeave:
    """End this account's meeting leg ``leg_id`` (its media connection is closed);
    answered ``Ok``."""

    id: RequestId
    leg_id: LegId


@message("relay.meeting_video")
class MeetingVideo:
    """The leg ``leg_id`` receives up to ``max_videos`` videos no taller than
    ``max_height`` within ``budget_kbps`` (0 videos: audio only); answered ``Ok``."""

    id: RequestId
    leg_id: LegId
    max_videos: U8
    max_height: U16
    budget_kbps: U32

    def __post_init__(self) -> None:
        if self.max_videos > MAX_VIDEOS or self.max_height > MAX_HEIGHT:
            raise ValueError("at most 32 videos and a height of at most 4320")


@message("relay.meeting_layer")
class MeetingLayer:
    """Pushed on a WebSocket carrying meeting leg ``leg_id``: stop (``active`` false) or
    start again sending simulcast ``layer`` of the stream ``sender``."""

    leg_id: LegId
    sender: U32
    layer: U8
    active: bool


@message("relay.meeting_keyframe")
class MeetingKeyframe:
    """Pushed on a WebSocket carrying meeting leg ``leg_id``: send a keyframe of simulcast
    ``layer`` of the stream ``sender``."""

    leg_id: LegId
    sender: U32
    layer: U8


__all__ = [
    "MAX_HEIGHT",
    "MAX_LAYERS",
    "MAX_VIDEOS",
    "MeetingJoin",
    "MeetingJoinAt",
    "MeetingKeyframe",
    "MeetingLayer",
    "MeetingLayerSpec",
    "MeetingLeave",
    "MeetingVideo",
    "RoomId",
]
