"""One run of ``sealrelay client meet``: start or join a group's meeting, play media in its
room for ``seconds``, leave, and sum it up (issue 18). The media side of
:class:`~client.meetings.net.MeetingNet`'s events:

    EnterRoom   MeetingJoin{room, layers} to this device's node (MeetingJoinAt naming the
                host's domain when that is another: a cascade) -> LegGrant; the media
                connection bound to the leg (QUIC, or the client WebSocket when QUIC does
                not bind within ``QUIC_FALLBACK_AFTER`` s, as ``client.calls.control``);
                MeetingVideo (the videos it wants); :class:`~client.meetings.mediarun.
                MeetingMedia` until the end; MeetingLeave
    LeaveRoom   that room's media stops (the group's meeting went on in another: glare)
    Roster      ``participant`` / ``left`` JSON lines
    Leading     a ``leading`` JSON line (this device took over the keys)

The run ends ``seconds`` after the last room was entered (and the media drained: a room
left for another after glare does not count), or fails with :data:`NOT_JOINED` when no
room was entered within :data:`JOIN_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import trio

from client.calls.control import BIND_ERRORS, QUIC_FALLBACK_AFTER
from client.errors import ClientError
from client.meetings.framing import VIDEO_LAYERS
from client.meetings.group import EnterRoom, Event, GroupMeeting, Leading, LeaveRoom, Roster
from client.meetings.mediarun import MeetingMedia
from client.meetings.net import MeetingNet
from transport.base import MediaTransport
from wire.relay import (
    LegGrant,
    MeetingJoin,
    MeetingJoinAt,
    MeetingLayerSpec,
    MeetingLeave,
    MeetingVideo,
)

JOIN_TIMEOUT: Final = 30.0
"""Seconds to get into a room (host or join) before the run fails."""
LEAVE_TIMEOUT: Final = 5.0
"""Seconds the last notes (the leave) have to reach the node."""
WANTED_VIDEOS: Final = 8
WANTED_HEIGHT: Final = 720
WANTED_KBPS: Final = 4000
"""What each participant asks to receive (``MeetingVideo``): the node allocates within it."""
NOT_JOINED: Final = "meeting.not_joined"
FAILED: Final = "meeting.failed"

Emit = Callable[[dict[str, Any]], None]
log = logging.getLogger(__name__)


class Node(Protocol):
    """This device's requests to its own node (``client.app.Client`` behind an adapter)."""

    async def request(self, frame: object) -> object: ...

    async def media_quic(self, grant: LegGrant) -> tuple[MediaTransport, int]: ...

    async def media_websocket(self, grant: LegGrant) -> tuple[MediaTransport, int]: ...


class MeetingFailed(ClientError):
    """The meeting could not be joined or its media set up; ``code`` says which."""

    code = FAILED


@dataclass
class MeetRun:
    """A ``meet`` run: the rooms' media and what the JSON lines said."""

    runs: list[MeetingMedia] = field(default_factory=list)
    entered: trio.Event = field(default_factory=trio.Event)
    failure: str | None = None


class Meet:
    """Follows one group meeting's events for one ``meet`` run (module docstring)."""

    def __init__(
        self,
        net_factory: Callable[[Callable[[Event], object]], MeetingNet],
        node: Node,
        *,
        video: bool,
        seconds: float,
        emit: Emit,
        transport: str = "quic",
    ) -> None:
        self.net = net_factory(self._on_event)
        self._node, self._video, self._seconds, self._emit = node, video, seconds, emit
        self._transport = transport
        self._run = MeetRun()
        self._stops: dict[bytes, trio.Event] = {}
        self._rooms: trio.Nursery | None = None
        self._deadline: float | None = None
        self._until = trio.CancelScope()
        self._bind_failures = 0

    @property
    def core(self) -> GroupMeeting:
        return self.net.core

    @property
    def rooms(self) -> list[MeetingMedia]:
        """The media of the rooms entered so far (the last is the one playing)."""
        return self._run.runs

    async def run(self) -> MeetRun:
        """Host or join, media until the end, leave."""
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as rooms:
                self._rooms = rooms
                await nursery.start(self.net.run)
                with trio.move_on_after(JOIN_TIMEOUT):
                    await self._run.entered.wait()
                if self._deadline is None:
                    rooms.cancel_scope.cancel()
                with self._until:  # its deadline moves with a later room (glare)
                    await trio.sleep_forever()
                self._rooms = None
            with trio.move_on_after(LEAVE_TIMEOUT):
                await self.net.leave()
            nursery.cancel_scope.cancel()
        if not self._run.runs:
            self._run.failure = FAILED if self._bind_failures else NOT_JOINED
        self._emit({"event": "ended", "reason": self._run.failure or "meeting.left"})
        return self._run

    def summary(self) -> dict[str, object]:
        """``client call``'s summary keys (summed over rooms) and the meeting's."""
        out: dict[str, object] = {}
        for media in self._run.runs:
            for key, value in media.summary().items():
                before = out.get(key)
                if isinstance(value, int) and isinstance(before, int):
                    out[key] = before + value
                elif isinstance(value, float) and key == "seconds" and isinstance(before, float):
                    out[key] = round(before + value, 3)
                else:
                    out[key] = value
        if not out:
            out = {"frames_sent": 0, "frames_received": 0, "frames_lost": 0, "frames_late": 0}
            out.update(decrypt_failures=0, latency_ms_p50=None, latency_ms_p99=None)
            out.update(jitter_ms=0.0, transport=self._transport, seconds=0.0)
        speakers = set().union(*(m.speakers for m in self._run.runs))
        videos = set().union(*(m.videos for m in self._run.runs))
        out.update(
            participants=self.core.most_participants,
            speakers_heard=len(speakers),
            videos_received=len(videos),
            epochs=len(self.core.epochs),
        )
        return out

    # --- events ----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if isinstance(event, EnterRoom) and self._rooms is not None:
            stop = self._stops[event.room] = trio.Event()
            self._rooms.start_soon(self._room, event, stop)
        elif isinstance(event, LeaveRoom):
            stopping = self._stops.get(event.room)
            if stopping is not None:
                stopping.set()
        elif isinstance(event, Roster):
            for pid, address in event.joined:
                self._emit({"event": "participant", "pid": pid, "address": address})
            for pid, address in event.left:
                self._emit({"event": "left", "pid": pid, "address": address})
        elif isinstance(event, Leading):
            self._emit({"event": "leading", "meeting": event.meeting.hex()})

    async def _room(self, enter: EnterRoom, stop: trio.Event) -> None:
        """Join the room on the node, bind media, play it, leave."""
        layers = tuple(MeetingLayerSpec(x.height, x.kbps) for x in VIDEO_LAYERS)
        member = enter.member
        try:
            sent = layers if self._video else ()
            join = MeetingJoinAt(0, enter.room, sent, enter.anchor) if enter.anchor else None
            grant = await self._node.request(join or MeetingJoin(0, enter.room, sent))
            if not isinstance(grant, LegGrant):
                raise MeetingFailed("the node gave no meeting leg")
            transport, sender = await self._bind(grant)
        except BIND_ERRORS as exc:
            log.info("meeting media not set up (%s)", getattr(exc, "code", type(exc).__name__))
            self._bind_failures += 1
            return
        self._deadline = trio.current_time() + self._seconds  # from entering this room
        self._until.deadline = self._deadline
        self._emit(
            {
                "event": "joined",
                "room": enter.room.hex(),
                "host": enter.host,
                "pid": member.pid,
                "transport": transport.kind,
            }
        )
        self._run.entered.set()
        me = self.core.me  # its identity key signs its frames (``client.meetings.signatures``)
        media = MeetingMedia(
            transport,
            sender,
            member,
            video=self._video,
            identity=(me.key, me.signer),
            emit=self._emit,
        )
        self._run.runs.append(media)
        try:
            with contextlib.suppress(*BIND_ERRORS):
                await self._node.request(
                    MeetingVideo(0, grant.leg_id, WANTED_VIDEOS, WANTED_HEIGHT, WANTED_KBPS)
                )
            await media.run(self._seconds, stop)
        finally:
            with contextlib.suppress(*BIND_ERRORS), trio.move_on_after(LEAVE_TIMEOUT):
                await self._node.request(MeetingLeave(0, grant.leg_id))
            with trio.CancelScope(shield=True):
                await transport.aclose()

    async def _bind(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        if self._transport == "quic":
            with trio.move_on_after(QUIC_FALLBACK_AFTER):
                try:
                    return await self._node.media_quic(grant)
                except BIND_ERRORS as exc:
                    log.info("QUIC media not bound (%s): the WebSocket carries it", exc)
        return await self._node.media_websocket(grant)
