"""The trio shell of the node's selective forwarding unit (DESIGN section 9; issue 18): one
:class:`~node.sfu.core.Sfu` per meeting room, fed by the media connections bound to the
room's legs (:class:`~node.sfu.rooms.MeetingLegs`).

    meetings = MeetingService(MeetingLegs(random), now_ms=...)
    await nursery.start(meetings.run)            # ticks, notices, expiry
    calls.route_meetings(meetings)               # QUIC binds of meeting legs come here
    client_legs.meetings = meetings              # LegAttach / WebSocket media of meeting legs

Media connections:

* QUIC: :class:`~node.calls.shell.CallService` hands over a connection whose ``MediaBind``
  names a meeting leg (:meth:`MeetingService.serve`). The bind draws a fresh sender id
  (answered ``MediaBound``) and the connection joins its room's core. Then one task reads
  its datagrams a batch at a time and one reads its control stream (``MediaVideo``
  requests, ``wire.media_control``); when it closes it leaves the room and its leg waits
  for a rebind until the allocation timeout.
* The WebSocket fallback: ``node.calls.clients.ClientLegs`` binds a meeting leg to the
  WebSocket (:meth:`MeetingService.bind_websocket`), gives its ``WebSocketSink`` for the
  datagrams out, and hands the WebSocket's inbound runs of datagrams to :meth:`forward`.

Forwarding (:meth:`forward`): each datagram of a batch goes through the room core's
``on_datagram`` (a header peek and a tuple lookup), and the copies are sent with one
``send_datagrams`` per destination connection per batch: no task and no checkpoint per
datagram. Drops are counted by the core (by reason) and here (``send_failed``,
``no_room``).

Notices (``LayerNotice``, ``KeyframeRequest``) go to the sender's media connection: on QUIC
its control stream (``MediaLayer``, ``MediaKeyframe``), on the fallback a push on the
WebSocket (``MeetingLayer``, ``MeetingKeyframe``; ``wire.relay_meetings``). Every
:data:`TICK_INTERVAL` seconds the shell ticks each room (speakers every 300 ms, layer
allocation), sends the notices gathered since the last tick (those of joins, leaves and
requests included, so a notice waits at most one tick), and ends the unbound legs past
their deadline; a room ends when its last leg does.

Cascade (``node.sfu.cascade``, ``node.sfu.linkrooms``): :meth:`MeetingService.join_at`
joins a room anchored at another domain over the media link to it; a link's datagrams go
through :meth:`forward_link` and the room's core as a participant's do.

Replicas (cluster mode, :attr:`MeetingService.placement` set; ``node.sfu.placement``):
every join first places its room (its local key) in the shared store. The replica that
holds it serves it as above; any other keeps a local room for its own participants and
joins the holder's over a media link to that replica, with the same cascade. A local room
whose link to its holder went is placed again at the next rejoin (``LinkRooms.run``): the
holder if it is still there, else this replica once the old hold has expired. A peer
domain's link that lands here joins the local room as a port (``node.sfu.peerrooms``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import trio

from node.calls.legs import Bound, Conn, Leg, Owner
from node.calls.peering import REPLICA_KIND
from node.calls.shell import wall_clock_ms
from node.errors import CALL_NO_LEG, CALL_UNAVAILABLE, NodeError
from node.sfu.cascade import Cascade, Port
from node.sfu.core import Sfu
from node.sfu.linkrooms import DIRECTIONS, LinkRooms, MeetingLink, link_of
from node.sfu.members import Member, PushShell, read_requests, send_control
from node.sfu.model import (
    DropReason,
    LayerSpec,
    MeetingStats,
    Notice,
    VideoRequest,
)
from node.sfu.peerrooms import PeerRooms
from node.sfu.placement import RoomPlacement
from node.sfu.rooms import MeetingLeg, MeetingLegs
from transport import MediaChannel, MediaTransport, TransportError
from wire import WireError, encode
from wire.media_control import (
    CLOSE_BIND_REFUSED,
    CLOSE_LEG_ENDED,
    CLOSE_MALFORMED_CONTROL,
    CLOSE_REBOUND,
    MediaBound,
    MediaRefused,
    decode_bind,
)
from wire.media_link import LinkRoomMessage

TICK_INTERVAL: Final = 0.1
"""Seconds between two ticks of every room (the core recomputes speakers every 300 ms)."""
FORWARD_BATCH: Final = 64
"""Most datagrams of one connection handled per wake-up."""
SEND_FAILED: Final = "send_failed"
"""A drop reason of the shell: a copy whose destination had gone or was too far behind."""
NO_ROOM: Final = "no_room"
"""A drop reason of the shell: a datagram on a connection that carries no meeting leg."""


def _ignore(owner: Owner, leg_id: bytes) -> None:
    """The default ``on_ended``."""


class MeetingService:
    """The meeting rooms of one node over its media connections (module docstring)."""

    def __init__(
        self,
        legs: MeetingLegs,
        *,
        domain: str = "",
        now_ms: Callable[[], int] = wall_clock_ms,
        tick_interval: float = TICK_INTERVAL,
    ) -> None:
        self.legs = legs
        self.domain = domain.lower()
        self._now = now_ms
        self._tick_interval = tick_interval
        self.on_ended: Callable[[Owner, bytes], object] = _ignore
        """Told ``(owner, leg_id)`` of every leg that expired (the node pushes ``LegEnded``)."""
        self.rooms: dict[bytes, Sfu] = {}
        self._members: dict[Conn, Member] = {}
        self._pending: list[Notice] = []
        self._retired_forwarded = 0
        self._retired_bytes = 0
        self._drops: dict[str, int] = {SEND_FAILED: 0, NO_ROOM: 0}
        self._retired_drops: dict[str, int] = {str(r): 0 for r in DropReason}
        self._binds = 0
        self._refused = 0
        self._delivered_bytes = 0
        self.cascade = Cascade(self)
        self.remote = LinkRooms(self.cascade, pending=self._queue, emptied=self._emptied)
        self.placement: RoomPlacement | None = None
        """Set by ``node.server`` in cluster mode: rooms are placed on one replica."""
        self._peers: PeerRooms | None = None
        legs.taken = self._sender_taken

    # --- requests (from /v1/client) ----------------------------------------------------------

    def owns(self, leg_id: bytes) -> bool:
        """Whether ``leg_id`` is a meeting leg (a QUIC bind of it comes here)."""
        return self.legs.owns(leg_id)

    def join(self, owner: Owner, room: bytes, layers: tuple[LayerSpec, ...]) -> Leg:
        """``MeetingJoin``: a new leg of ``owner`` in ``room``."""
        return self.legs.join(owner, room, layers, self._now())

    async def join_at(
        self, owner: Owner, anchor: str, room: bytes, layers: tuple[LayerSpec, ...]
    ) -> Leg:
        """``MeetingJoinAt`` (and ``MeetingJoin``, with no ``anchor``): a new leg of
        ``owner`` in ``room`` anchored at ``anchor``'s node, joined there first if this
        node is not the anchor (``node.sfu.linkrooms``); in cluster mode the room is
        placed first (module docstring)."""
        here = not anchor or anchor.lower() == self.domain
        if self.placement is not None:
            key = await self._place(self.domain if here else anchor.lower(), room)
        elif here:
            return self.join(owner, room, layers)
        else:
            key = await self.remote.enter(anchor, room)
        try:
            return self.legs.join(owner, key, layers, self._now())
        except (NodeError, ValueError):
            self._end_room_if_empty(key)
            raise

    async def _place(self, anchor: str, room: bytes) -> bytes:
        """Place ``room`` (cluster mode; ``RoomPlacement.place``): its local key."""
        if self.placement is None:
            raise NodeError(CALL_UNAVAILABLE, "this node places no rooms")
        return await self.placement.place(self.remote, self._live, anchor, room)

    # --- the cascade's view of the rooms (``node.sfu.cascade.Rooms``) ------------------------

    def core(self, key: bytes) -> Sfu:
        """The core of room ``key``, created if it has none yet."""
        core = self.rooms.get(key)
        if core is None:
            core = self.rooms[key] = Sfu(self._now())
        return core

    def anchored(self, room: bytes, link: object = None) -> bool:
        """Whether ``room`` is a live room of this node (not one anchored elsewhere), or,
        for a link of another replica, a local room this replica holds, or, for a peer
        domain's link, the local room of a room of this domain another replica holds."""
        if not (self.legs.has_room(room) or room in self.rooms):
            return False
        if not self.remote.is_remote(room):
            return True
        at_replica = self.remote.held_at_replica(room)
        if getattr(link, "kind", None) == REPLICA_KIND:
            return not at_replica
        return at_replica and self.remote.anchor(room) == self.domain  # node.sfu.peerrooms

    def leave(self, owner: Owner, leg_id: bytes) -> None:
        """``MeetingLeave``: the leg ends; its media connection leaves the room (and, on
        QUIC, is closed)."""
        left = self.legs.leave(owner, leg_id)
        if left.conn is not None:
            member = self._members.get(left.conn)
            self._leave_room(left.conn, left.leg.room)
            if member is not None and member.quic is not None:
                member.quic.close(CLOSE_LEG_ENDED, "left the meeting")
        self._end_room_if_empty(left.leg.room)

    def request(self, owner: Owner, leg_id: bytes, video: VideoRequest) -> None:
        """``MeetingVideo`` (or ``MediaVideo`` on the control stream): what the leg
        receives; kept for its next binding if it has none now."""
        leg = self.legs.get(leg_id)
        if leg is None or leg.owner != owner:
            raise NodeError(CALL_NO_LEG, "no such meeting leg")
        self._apply(leg, video)

    # --- media connections --------------------------------------------------------------------

    async def serve(self, channel: MediaChannel, first: bytes) -> None:
        """A QUIC connection whose first control message ``first`` binds a meeting leg:
        bind, forward until it closes, leave (module docstring)."""
        try:
            request = decode_bind(first)
            binding = self.legs.bind(channel, request.leg_id, request.leg_secret, self._now())
        except WireError:
            channel.close(CLOSE_MALFORMED_CONTROL, "malformed control message")
            return
        except NodeError as refusal:
            self._refused += 1
            await send_control(channel, encode(MediaRefused(refusal.code, refusal.message)))
            channel.close(CLOSE_BIND_REFUSED, refusal.code)
            return
        leg = binding.leg
        try:
            self._enter(channel, Member(channel, channel, None), leg, binding.sender)
            self._replace(binding.replaced, leg)
            if await send_control(channel, encode(MediaBound(leg.leg_id, binding.sender))):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_control, channel, leg, nursery.cancel_scope)
                    await self._read_datagrams(channel)
                    nursery.cancel_scope.cancel()
        finally:
            self._gone(channel)
            channel.close(CLOSE_LEG_ENDED, "unbound")

    def bind_websocket(
        self, shell: PushShell, leg_id: bytes, secret: bytes, sink: MediaTransport
    ) -> Bound:
        """``LegAttach`` of a meeting leg: the WebSocket ``shell`` carries its media, sent
        out through ``sink``. Refused as a QUIC bind."""
        binding = self.legs.bind(shell, leg_id, secret, self._now())
        member = self._members.get(shell) or Member(sink, None, shell)
        self._enter(shell, member, binding.leg, binding.sender)
        self._replace(binding.replaced, binding.leg)
        return Bound(leg_id, binding.sender)

    def carries(self, conn: Conn) -> bool:
        """Whether ``conn`` carries a bound meeting leg (its datagrams come here)."""
        return conn in self._members

    def gone(self, conn: Conn) -> None:
        """The WebSocket ``conn`` closed: its legs leave their rooms and wait for a rebind."""
        if conn in self._members:
            self._gone(conn)

    async def forward(self, source: Conn, batch: Sequence[bytes]) -> None:
        """Forward ``batch``, datagrams that arrived on ``source``: one core decision each,
        then one ``send_datagrams`` per destination."""
        member = self._members.get(source)
        rooms = {leg.room for leg in member.senders.values()} if member is not None else set()
        if len(rooms) != 1:  # (a WebSocket with legs in several rooms: not supported yet)
            self._drops[NO_ROOM] += len(batch)
            return
        await self._forward(self.rooms[rooms.pop()], source, batch)

    async def forward_link(self, link: MeetingLink, batch: Sequence[bytes]) -> list[bytes]:
        """Forward the datagrams of ``batch`` (from ``link``) that a meeting sender of the
        link sent, each through its room's core; the others, for the call relay."""
        rest: list[bytes] = []
        ports: dict[Port, list[bytes]] = {}
        route = self.cascade.route
        for data in batch:  # the sender id at bytes 3-6 of any type; the core checks the rest
            port = route(link, int.from_bytes(data[3:7], "big")) if len(data) > 7 else None
            if port is None:
                rest.append(data)
            else:
                ports.setdefault(port, []).append(data)
        for port, datagrams in ports.items():
            self.remote.count("in", datagrams)
            core = self.rooms.get(port.key)
            if core is not None:
                await self._forward(core, port, datagrams)
        return rest

    def receive_link(self, link: MeetingLink, message: LinkRoomMessage) -> None:
        """A room message that arrived on ``link`` (a peer's join of a room another
        replica holds is placed first: ``node.sfu.peerrooms``)."""
        if self._peers is None or not self._peers.intercept(link, message):
            self.remote.receive(link, message)

    def link_down(self, link: MeetingLink) -> None:
        """``link`` closed: its senders leave the rooms, its joins fail."""
        if self._peers is not None:
            self._peers.link_down(link)
        self.remote.link_down(link)

    async def _forward(self, core: Sfu, source: Conn, batch: Sequence[bytes]) -> None:
        on_datagram = core.on_datagram
        out: dict[Conn, list[bytes]] = {}
        for data in batch:
            for dest in on_datagram(source, data):
                copies = out.get(dest)
                if copies is None:
                    out[dest] = [data]
                else:
                    copies.append(data)
        for dest, datagrams in out.items():
            target = self._members.get(dest)
            transport = target.out if target is not None else None
            if type(dest) is Port:
                transport = link_of(dest.link).channel
                self.remote.count("out", datagrams)
            elif transport is not None:
                self._delivered_bytes += sum(map(len, datagrams))
            if transport is None:
                self._drops[SEND_FAILED] += len(datagrams)
                continue
            try:
                await transport.send_datagrams(datagrams)
            except TransportError:
                self._drops[SEND_FAILED] += len(datagrams)

    # --- the tick ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick every room, send notices and end expired legs (and join again the rooms
        whose link to their anchor went, ``LinkRooms.run``), until cancelled."""
        async with trio.open_nursery() as nursery:
            if self.placement is None:
                await nursery.start(self.remote.run, self.legs.has_room)
            else:  # a room held here for links only is joined again too
                await nursery.start(self.remote.run, self._live)
                self.remote.rejoin = self._place
                await nursery.start(self.placement.run, self._live, self.remote)
                self._peers = PeerRooms(self, self.placement)
                await nursery.start(self._peers.run)
            task_status.started()
            while True:
                await trio.sleep(self._tick_interval)
                await self.tick()

    async def tick(self) -> None:
        """One tick (what :meth:`run` does every :data:`TICK_INTERVAL` seconds)."""
        now = self._now()
        for leg in self.legs.expire(now):
            self.on_ended(leg.owner, leg.leg_id)
            self._end_room_if_empty(leg.room)
        for core in self.rooms.values():
            self._pending += core.tick(now)
        if self.placement is not None:
            await self.placement.release_ended()
        notices, self._pending = self._pending, []
        self.remote.send(self.cascade.notices(notices))  # those for links' ports
        for notice in notices:
            if type(notice.conn) is not Port:
                await self._notify(notice)

    def numbers(self) -> MeetingStats:
        """The meetings' numbers now (``/metrics``)."""
        stats = [core.stats() for core in self.rooms.values()]
        drops = dict(self._retired_drops)
        for s in stats:
            for reason, n in s.drops.items():
                drops[str(reason)] += n
        drops.update(self._drops)
        return MeetingStats(
            rooms=self.legs.rooms,
            participants=sum(s.participants for s in stats),
            legs=self.legs.legs,
            forwarded=self._retired_forwarded + sum(s.forwarded for s in stats),
            forwarded_bytes=self._retired_bytes + sum(s.forwarded_bytes for s in stats),
            drops=drops,
            binds=self._binds,
            refused=self._refused,
            delivered_bytes=self._delivered_bytes,
            link_bytes={d: self.remote.bytes[d] for d in DIRECTIONS},
            link_datagrams={d: self.remote.datagrams[d] for d in DIRECTIONS},
            link_refused={"sender_taken": self.cascade.refused, "ignored": self.cascade.ignored},
            link_ports=sum(s.links for s in stats),
            peer_joins_placed=0 if self._peers is None else self._peers.placed,
        )

    # --- internals ---------------------------------------------------------------------------

    def _enter(self, conn: Conn, member: Member, leg: MeetingLeg, sender: int) -> None:
        """``conn`` (bound to ``leg`` as ``sender``) joins the room's core."""
        self._binds += 1
        self._members[conn] = member
        member.senders[sender] = leg
        core = self.core(leg.room)
        self._pending += core.join(conn, sender, leg.layers)
        self.remote.send(self.cascade.sender_added(leg.room, conn, sender, leg.layers))
        if leg.video is not None:
            self._pending += core.request(conn, leg.video)

    def _replace(self, replaced: tuple[Conn, int] | None, leg: MeetingLeg) -> None:
        """The connection that carried ``leg`` before leaves the room (QUIC: closed)."""
        if replaced is None:
            return
        old, _sender = replaced
        member = self._members.get(old)
        self._leave_room(old, leg.room)
        if member is not None and member.quic is not None:
            member.quic.close(CLOSE_REBOUND, "the leg was bound by another connection")

    def _apply(self, leg: MeetingLeg, video: VideoRequest) -> None:
        leg.video = video
        core = self.rooms.get(leg.room)
        if leg.conn is not None and core is not None:
            self._pending += core.request(leg.conn, video)

    def _gone(self, conn: Conn) -> None:
        """``conn`` closed: its legs wait for a rebind, it leaves every room it was in."""
        member = self._members.pop(conn, None)
        rooms = {leg.room for leg in member.senders.values()} if member is not None else set()
        self.legs.unbind(conn, self._now())
        for room in rooms:
            self._leave_room(conn, room)

    def _leave_room(self, conn: Conn, room: bytes) -> None:
        core = self.rooms.get(room)
        if core is not None:
            self._pending += core.leave(conn)
        member = self._members.get(conn)
        if member is not None:
            gone = [s for s, leg in member.senders.items() if leg.room == room]
            for sender in gone:
                del member.senders[sender]
            if not member.senders:
                del self._members[conn]
            self.remote.send(self.cascade.senders_removed(room, conn, gone))

    def _live(self, room: bytes) -> bool:
        return self.legs.has_room(room) or room in self.rooms

    def _queue(self, notices: Sequence[Notice]) -> None:
        self._pending += notices  # sent at the next tick

    def _sender_taken(self, room: bytes, sender: int) -> bool:
        core = self.rooms.get(room)
        return core is not None and core.owner(sender) is not None

    def _emptied(self, room: bytes) -> None:
        """A link left ``room``: end it if nothing else holds it."""
        self._end_room_if_empty(room)

    def end_if_empty(self, room: bytes) -> None:
        """End ``room`` here if nothing holds it any more (``node.sfu.peerrooms``)."""
        self._end_room_if_empty(room)

    def _end_room_if_empty(self, room: bytes) -> None:
        if self.legs.has_room(room) or self.remote.joining(room):
            return
        if self.cascade.hosting(room):
            return  # joined here: the other domains' (or replicas') participants hold it
        self.remote.send(self.remote.forget(room))
        if self.placement is not None:
            self.placement.ended(room)
        core = self.rooms.pop(room, None)
        if core is None:
            return
        stats = core.stats()
        self._retired_forwarded += stats.forwarded
        self._retired_bytes += stats.forwarded_bytes
        for reason, n in stats.drops.items():
            self._retired_drops[str(reason)] += n

    async def _notify(self, notice: Notice) -> None:
        """Send ``notice`` to its sender's media connection (if it is still there)."""
        member = self._members.get(notice.conn)
        if member is not None:
            await member.notify(notice)

    async def _read_datagrams(self, channel: MediaChannel) -> None:
        while True:
            try:
                batch = await channel.receive_datagram_batch(FORWARD_BATCH)
            except TransportError:
                return
            await self.forward(channel, batch)

    async def _read_control(
        self, channel: MediaChannel, leg: MeetingLeg, scope: trio.CancelScope
    ) -> None:
        """``MediaVideo`` requests on the control stream; anything else closes."""

        def apply(request: VideoRequest) -> None:
            if leg.conn is channel:
                self._apply(leg, request)

        await read_requests(channel, scope, apply)
