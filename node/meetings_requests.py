"""The meeting leg requests of ``/v1/client`` (``wire.relay_meetings``; DESIGN section 9;
issue 18), as ``node.session`` handlers (merged into ``node.calls_requests.CALL_HANDLERS``).

    MeetingJoin   -> LegGrant     a leg of the account in a meeting room
    MeetingJoinAt -> LegGrant     the same in a room anchored at another domain's node,
                                  joined there over the media link first (a cascade)
    MeetingVideo  -> Ok           the videos the leg receives
    MeetingLeave  -> Ok           end the account's meeting leg

A leg's owner is the account's mailbox id, never its address; the room id is the host
client's random draw, which names no group. The leg binds a media connection as a call leg
does (``MediaBind`` on QUIC, ``LegAttach`` here). Refusals are ``Error`` frames:
``call.unavailable`` on a node that serves no calls, ``call.no_leg``, ``meeting.full``;
for a room anchored elsewhere also ``meeting.no_room`` (the anchor holds no such room),
``call.unreachable`` and the link's refusals (``fed.policy``...).
The work is :class:`node.sfu.shell.MeetingService`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from node.calls.clients import ClientLegs
from node.calls.wsmedia import ClientShell
from node.errors import CALL_UNAVAILABLE, NodeError
from node.relay import Caller, Relay
from node.sfu.model import LayerSpec, VideoRequest
from node.sfu.shell import MeetingService
from wire.relay import LegGrant, MeetingJoin, MeetingJoinAt, MeetingLeave, MeetingVideo, Ok


class MeetingSession(Protocol):
    """What the handlers need of a ``node.session.Session``."""

    @property
    def relay(self) -> Relay: ...

    @property
    def shell(self) -> ClientShell | None: ...


def _meetings(s: MeetingSession) -> tuple[ClientLegs, MeetingService, ClientShell]:
    calls, shell = s.relay.calls, s.shell
    if calls is None or shell is None or calls.meetings is None:
        raise NodeError(CALL_UNAVAILABLE, "this node serves no meetings")
    return calls, calls.meetings, shell


async def _join(s: MeetingSession, caller: Caller, frame: MeetingJoin) -> LegGrant:
    calls, meetings, shell = _meetings(s)
    layers = tuple(LayerSpec(layer.height, layer.kbps) for layer in frame.layers)
    leg = await meetings.join_at(caller.mailbox, "", frame.room, layers)
    calls.watch(caller.mailbox, shell)
    await calls.mirror_meeting(leg)
    return LegGrant(frame.id, leg.leg_id, leg.leg_secret)


async def _join_at(s: MeetingSession, caller: Caller, frame: MeetingJoinAt) -> LegGrant:
    calls, meetings, shell = _meetings(s)
    layers = tuple(LayerSpec(layer.height, layer.kbps) for layer in frame.layers)
    leg = await meetings.join_at(caller.mailbox, frame.anchor, frame.room, layers)
    calls.watch(caller.mailbox, shell)
    await calls.mirror_meeting(leg)
    return LegGrant(frame.id, leg.leg_id, leg.leg_secret)


async def _video(s: MeetingSession, caller: Caller, frame: MeetingVideo) -> Ok:
    _, meetings, _shell = _meetings(s)
    video = VideoRequest(frame.max_videos, frame.max_height, frame.budget_kbps)
    meetings.request(caller.mailbox, frame.leg_id, video)
    return Ok(frame.id)


async def _leave(s: MeetingSession, caller: Caller, frame: MeetingLeave) -> Ok:
    _, meetings, _shell = _meetings(s)
    meetings.leave(caller.mailbox, frame.leg_id)
    return Ok(frame.id)


MEETING_HANDLERS: Final[dict[type, Callable[[Any, Caller, Any], Awaitable[object]]]] = {
    MeetingJoin: _join,
    MeetingJoinAt: _join_at,
    MeetingVideo: _video,
    MeetingLeave: _leave,
}
"""The meeting requests' handlers, for ``node.session``'s table."""
