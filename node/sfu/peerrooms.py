"""A peer domain's join of a meeting room that another replica of this domain holds
(DESIGN section 9; issue 18, item 4; docs/kubernetes.md "The leg's replica"): cluster mode
only.

    peers = PeerRooms(meetings, placement)          # node.sfu.shell.MeetingService.run
    await nursery.start(peers.run)
    if not peers.intercept(link, message):          # MeetingService.receive_link
        meetings.remote.receive(link, message)

Another domain's node joins a room anchored here (``RoomJoin``, the cascade of
``node.sfu.cascade``) over its one media link to this domain, which the UDP load balancer
may land on any replica. A replica where the room is live serves it as a link port of its
room: the room itself if it holds it, else its local room, which is joined at the holder
(``MeetingService.anchored``), so the cascade nests one level more and the room keeps one
anchor. A replica where the room is not live (none of its participants is in it) looks up
the holder (:meth:`~node.sfu.placement.RoomPlacement.join_holder`, never a claim: a peer
domain makes no room), joins it there for a local room of its own, and then serves the
join as above; a room no other replica holds is refused ``meeting.no_room``, as on one node.

The placement runs in a task of its own (:meth:`PeerRooms.run`'s nursery), so the link's
reader goes on; a repeat of the join while it runs is dropped (the peer's join waits for
the one answer), and past :data:`MAX_PLACING` joins of one link at once the next is
refused at once. Whatever fails, the peer gets ``RoomRefused{meeting.no_room}`` and the
local room made for it ends if nothing else holds it; nothing here raises into the link.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Final, Protocol

import trio

from node.calls.peering import DOMAIN_KIND
from node.errors import MEETING_NO_ROOM, NodeError
from node.sfu.linkrooms import LinkRooms, MeetingLink
from node.sfu.placement import RoomPlacement
from wire.media_link import LinkRoomMessage, RoomJoin, RoomRefused

log = logging.getLogger("sealrelay.node.sfu.peerrooms")

MAX_PLACING: Final = 16
"""A peer link's joins being placed at once (each costs a store lookup); more are refused
``meeting.no_room`` at once, so a peer naming rooms in bulk cannot keep the store busy."""


class Rooms(Protocol):
    """The meeting shell as the peer rooms need it (``node.sfu.shell.MeetingService``)."""

    remote: LinkRooms

    def anchored(self, room: bytes, link: object = None) -> bool:
        """Whether ``link``'s far side may join the live room ``room`` here."""
        ...

    def end_if_empty(self, room: bytes) -> None:
        """End ``room`` here if nothing holds it any more."""
        ...


def to_place(message: LinkRoomMessage, kind: str, anchored: bool) -> bytes | None:
    """The room that a message on a link of ``kind`` asks this replica to place first
    (pure): a ``RoomJoin`` from a peer domain (a replica names rooms it found placed) of a
    room not live here (``anchored`` False); None: the cascade handles the message now."""
    if not isinstance(message, RoomJoin) or kind != DOMAIN_KIND or anchored:
        return None
    return message.room


class PeerRooms:
    """The peer domains' joins of rooms held by other replicas (module docstring)."""

    def __init__(self, rooms: Rooms, placement: RoomPlacement) -> None:
        self._rooms, self._placement = rooms, placement
        self._placing: set[tuple[Hashable, bytes]] = set()
        self._nursery: trio.Nursery | None = None
        self.placed = 0
        """Peer domains' joins served after joining the room at its holder."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the placement tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def intercept(self, link: MeetingLink, message: LinkRoomMessage) -> bool:
        """Whether ``message`` (on ``link``) is a join taken over here (placed in a task,
        then served); False: the cascade handles it now."""
        if self._nursery is None:
            return False
        kind = getattr(link, "kind", DOMAIN_KIND)
        anchored = isinstance(message, RoomJoin) and self._rooms.anchored(message.room, link)
        room = to_place(message, kind, anchored)
        if room is None:
            return False
        if (link, room) in self._placing:
            return True
        if sum(1 for held, _ in self._placing if held is link) >= MAX_PLACING:
            link.send(RoomRefused(room, MEETING_NO_ROOM))
            return True
        self._placing.add((link, room))
        self._nursery.start_soon(self._place, link, room)
        return True

    def link_down(self, link: MeetingLink) -> None:
        """``link`` closed: its joins being placed are not served."""
        self._placing = {(held, room) for held, room in self._placing if held is not link}

    async def _place(self, link: MeetingLink, room: bytes) -> None:
        """Place ``room`` for the join on ``link``, then answer it; never raises."""
        try:
            await self._placement.join_holder(self._rooms.remote, room)
        except NodeError as refusal:
            log.info("peer's room join refused", extra={"code": refusal.code})
        except Exception:  # a bug here must not take the meetings down with it
            log.exception("placing a peer's room join failed")
        try:
            self._answer(link, room)
        except Exception:
            log.exception("answering a peer's room join failed")

    def _answer(self, link: MeetingLink, room: bytes) -> None:
        """Serve the join if the room is live here now, else refuse it; nothing if the
        link went meanwhile. The local room ends if nothing holds it."""
        waiting = (link, room) in self._placing
        self._placing.discard((link, room))
        if waiting and self._rooms.anchored(room, link):
            self.placed += 1
            self._rooms.remote.receive(link, RoomJoin(room))
        elif waiting:
            link.send(RoomRefused(room, MEETING_NO_ROOM))
        self._rooms.end_if_empty(room)
