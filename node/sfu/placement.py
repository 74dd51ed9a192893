"""Meeting rooms across the replicas of one domain (DESIGN sections 7 and 9; issue 18, item
4; docs/kubernetes.md "The leg's replica"): the trio side of the ``MediaPlacement`` port.

    placement = RoomPlacement(store.media_placement, replica_id, domain="a.example", now_ms=...)
    await nursery.start(placement.announce, "10.0.0.7", 7481)   # every ANNOUNCE_INTERVAL s
    key = await placement.place(meetings.remote, live, anchor, room)   # held, or joined
                                             # at the replica that holds it

In cluster mode (the Redis store) each replica announces where the other replicas reach
its media listener (its internal address and UDP port) for :data:`MEDIA_TTL_MS`, renewed
every :data:`ANNOUNCE_INTERVAL` seconds and withdrawn when it stops. A meeting room is
claimed by the first replica that gets a join for it (``place_room``); the holder renews
its hold every :data:`RENEW_INTERVAL` seconds while the room lives here and releases it
when the room ends. Every other replica keeps a local room for its own participants and
joins the holder's over an intra-cluster media link (``node.sfu.linkrooms``, the cascade
as for another domain). A replica that stops renewing (it crashed) loses its rooms after
:data:`ROOM_TTL_MS`; the replicas joined there notice at their next round
(``check_holders``: the holder is no longer that replica) and place the room again: the
first claim takes it over, the others join there.

Store failures of a claim or a lookup are ``call.unreachable`` (the join fails, and is
retried by the client or by the rejoin of ``LinkRooms.run``); those of the renewals and
announcements are logged and tried again at the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import trio

from node.calls.peering import ReplicaPeer
from node.calls.replicas import replica_peer
from node.errors import CALL_UNREACHABLE, MEETING_NO_ROOM, NodeError
from node.sfu.cascade import room_key
from node.sfu.linkrooms import LinkRooms
from node.store import StoreError
from node.store.ports import MediaPlacement

log = logging.getLogger("sealrelay.node.sfu.placement")

ROOM_TTL_MS: Final = 10_000
"""How long a hold lasts unrenewed: how long the rooms of a crashed replica stay its."""
RENEW_INTERVAL: Final = ROOM_TTL_MS / 1000 / 4
"""Seconds between two renewals of the holds (a quarter of their life)."""
PLACE_RETRY_DELAY: Final = 0.2
"""Seconds before a placement refused by the holder (``meeting.no_room``: a claim that
raced the holder's first join, or its room's end) is tried once more."""
MEDIA_TTL_MS: Final = 15_000
"""How long an announced media address lasts unrenewed."""
ANNOUNCE_INTERVAL: Final = MEDIA_TTL_MS / 1000 / 3
"""Seconds between two announcements of this replica's media address."""


def holder_elsewhere(holder: bytes | None, here: bytes) -> bytes:
    """The replica a peer domain's join of a room not live here goes to (pure): its holder,
    if that is another replica; ``meeting.no_room`` if none holds it, or this one does (the
    room ended here a moment ago: its hold is released at the next round)."""
    if holder is None or holder == here:
        raise NodeError(MEETING_NO_ROOM, "no such meeting room")
    return holder


class RoomPlacement:
    """This replica's media address and room holds in the shared ``MediaPlacement``."""

    def __init__(
        self,
        port: MediaPlacement,
        replica: bytes,
        *,
        domain: str,
        now_ms: Callable[[], int],
        room_ttl_ms: int = ROOM_TTL_MS,
    ) -> None:
        self.port = port
        self.replica = replica
        self.domain = domain.lower()
        self._now = now_ms
        self._ttl = room_ttl_ms
        self.held: set[bytes] = set()
        """The rooms this replica claimed and has not released."""
        self._ended: set[bytes] = set()
        self.moved = 0
        """Local rooms let go of because their holder was not the replica they were joined
        at any more (``check_holders``)."""
        self.lost = 0
        """Holds found taken by another replica at a renewal (a store outage longer than
        the TTL): the room goes on here, and joins there at its next placement."""

    async def place(
        self, remote: LinkRooms, live: Callable[[bytes], bool], anchor: str, room: bytes
    ) -> bytes:
        """The local key of ``room`` anchored at ``anchor`` (this domain, or another),
        held by this replica or joined at the replica that holds it, over ``remote``
        (the meeting shell's rooms joined upstream; ``live`` says which rooms hold a leg
        or a link here). A room that is live and settled (held here, or joined at its
        holder) is left as it is; else it is claimed: won, it is this replica's (joined
        at a foreign anchor if it has one); lost, it is joined at the holder."""
        key = room if anchor == self.domain else room_key(anchor, room)
        if live(key) and (remote.joined(key) if remote.is_remote(key) else key in self.held):
            return key
        try:
            return await self._place(remote, key, anchor, room)
        except NodeError as refusal:
            if refusal.code != MEETING_NO_ROOM:
                raise
        # the holder had not made the room yet, or ended it just now: once more
        await trio.sleep(PLACE_RETRY_DELAY)
        return await self._place(remote, key, anchor, room)

    async def _place(self, remote: LinkRooms, key: bytes, anchor: str, room: bytes) -> bytes:
        holder = await self.claim(key)
        if holder is None:
            if remote.held_at_replica(key):
                remote.detach(key)  # its holder went: it is this replica's now
            if anchor != self.domain:
                await remote.enter(anchor, room)
            return key
        return await remote.enter_at(key, anchor, room, await self.peer(holder))

    async def join_holder(self, remote: LinkRooms, room: bytes) -> bytes:
        """Join this domain's ``room`` at the replica that holds it, for a peer domain's
        link that reached this replica (``node.sfu.peerrooms``): the local key (``room``).
        Never claimed here (a peer domain makes no room on one node either): no other
        replica holding it is ``meeting.no_room``; store failures ``call.unreachable``."""
        try:
            holder = await self.port.room_holder(room, self._now())
        except StoreError as exc:
            raise NodeError(CALL_UNREACHABLE, f"room lookup failed: {exc}") from None
        replica = holder_elsewhere(holder, self.replica)
        return await remote.enter_at(room, self.domain, room, await self.peer(replica))

    async def claim(self, room: bytes) -> bytes | None:
        """Claim ``room``: None if this replica holds it now, else the replica that does."""
        try:
            holder = await self.port.place_room(room, self.replica, self._now(), self._ttl)
        except StoreError as exc:
            raise NodeError(CALL_UNREACHABLE, f"room placement failed: {exc}") from None
        if holder == self.replica:
            self.held.add(room)
            self._ended.discard(room)
            return None
        return holder

    async def peer(self, replica: bytes) -> ReplicaPeer:
        """The media address ``replica`` announced; ``call.unreachable`` if none (it has
        gone, or the store failed)."""
        return await replica_peer(self.port, replica, self._now(), "the room")

    def ended(self, room: bytes) -> None:
        """The room ended here: its hold is released at the next round (soon)."""
        if room in self.held:
            self._ended.add(room)

    async def release_ended(self) -> None:
        """Release the holds of the rooms that ended."""
        for room in sorted(self._ended):
            self._ended.discard(room)
            self.held.discard(room)
            try:
                await self.port.release_room(room, self.replica)
            except StoreError as exc:  # it expires on its own
                log.warning("room release failed", extra={"error": str(exc)})

    async def renew(self, live: Callable[[bytes], bool]) -> None:
        """Renew the holds of the rooms that ``live`` says still live here; the others
        are released."""
        for room in sorted(self.held):
            if not live(room):
                self.ended(room)
                continue
            try:
                kept = await self.port.renew_room(room, self.replica, self._now(), self._ttl)
            except StoreError as exc:
                log.warning("room renewal failed", extra={"error": str(exc)})
                continue
            if not kept:
                self.lost += 1
                self.held.discard(room)
                log.warning("room hold lost", extra={"code": "meeting.placement_lost"})
        await self.release_ended()

    async def check_holders(self, remote: LinkRooms) -> None:
        """Let go of the upstream of each local room joined at a replica that no longer
        holds it (it crashed and its hold expired, or another took the room over): the
        room is placed again at the next rejoin, sooner than the link's idle timeout."""
        for key, replica in remote.at_replicas():
            try:
                holder = await self.port.room_holder(key, self._now())
            except StoreError as exc:
                log.warning("room holder lookup failed", extra={"error": str(exc)})
                return
            if holder != replica:
                self.moved += 1
                remote.let_go(key)

    async def run(
        self,
        live: Callable[[bytes], bool],
        remote: LinkRooms | None = None,
        *,
        interval: float = RENEW_INTERVAL,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Renew (and release) every ``interval`` seconds, and check the holders of the
        rooms joined at other replicas, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(interval)
            await self.renew(live)
            if remote is not None:
                await self.check_holders(remote)

    async def announce(
        self,
        address: str,
        port: int,
        *,
        interval: float = ANNOUNCE_INTERVAL,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Announce ``address:port`` every ``interval`` seconds until cancelled; then
        withdraw it (and release every hold), so the others stop dialling here."""
        started = False
        try:
            while True:
                try:
                    now = self._now()
                    await self.port.announce_media(self.replica, address, port, now, MEDIA_TTL_MS)
                except StoreError as exc:
                    log.warning("media announcement failed", extra={"error": str(exc)})
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(interval)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await self._withdraw()

    async def _withdraw(self) -> None:
        try:
            await self.port.withdraw_media(self.replica)
            for room in sorted(self.held):
                await self.port.release_room(room, self.replica)
        except StoreError as exc:
            log.warning("media withdrawal failed", extra={"error": str(exc)})
        self.held.clear()
