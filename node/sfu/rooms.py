"""Meeting legs and rooms on one node (DESIGN section 9; issue 18): who may bind a media
connection into which room, and with which sender id.

Pure: no trio, no clock, no store; time (Unix ms) and randomness (``random(n)``) injected.
The trio shell (:mod:`node.sfu.shell`) holds one :class:`~node.sfu.core.Sfu` per room and
feeds it what this registry decides.

A *meeting leg* is a call leg (``node.calls.legs``) in a *room* instead of a bridge: a
random 16-byte id and a random 32-byte bearer secret, of which only SHA-256 is kept; the
client binds a media connection (QUIC ``MediaBind`` or the WebSocket's ``LegAttach``) to it
with the secret. Each binding draws a fresh random sender id, unique in the room, so the
ids say nothing about the account, the room or the order of joining. A room is named by 16
random bytes the host client chose (the node never learns the group); it lives while it
holds a leg.

Lifetime: an unbound leg (after the join, or after its connection went) expires after the
allocation timeout; a bound one lives while its connection does (the QUIC idle timeout and
the WebSocket's own liveness end dead connections). Refusals raise
:class:`node.errors.NodeError`: ``call.no_leg``, ``call.bad_secret``, ``call.expired``, and
``meeting.full`` when a room holds :data:`MAX_PARTICIPANTS` legs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from node.calls.legs import (
    ALLOCATION_TIMEOUT_MS,
    LEG_ID_BYTES,
    LEG_SECRET_BYTES,
    Conn,
    Leg,
    Owner,
    secret_hash,
    secret_matches,
)
from node.errors import CALL_BAD_SECRET, CALL_EXPIRED, CALL_NO_LEG, MEETING_FULL, NodeError
from node.sfu.model import LayerSpec, VideoRequest, check_layers
from wire.meeting import MAX_PARTICIPANTS

_SENDER_BYTES: Final = 4
_UNBOUND_NEVER: Final = -1


@dataclass(slots=True, eq=False)
class MeetingLeg:
    """One participant's place in a room (mutable; only :class:`MeetingLegs` changes it).
    ``deadline`` matters only while ``conn`` is None."""

    leg_id: bytes
    owner: Owner
    room: bytes
    secret_hash: bytes
    layers: tuple[LayerSpec, ...]
    deadline: int
    conn: Conn | None = None
    sender: int | None = None
    video: VideoRequest | None = None
    """What it asked to receive (``MeetingVideo``), applied again at each binding."""


@dataclass(frozen=True, slots=True)
class Binding:
    """A media connection bound to a meeting leg: the ``sender`` id it must put in its
    datagrams; ``replaced`` the connection that carried the leg before (a reconnect, or a
    move to the fallback) and its old sender id, which leave the room."""

    leg: MeetingLeg
    sender: int
    replaced: tuple[Conn, int] | None


@dataclass(frozen=True, slots=True)
class Left:
    """A leg that ended, with the connection and sender id it was bound to (None if
    unbound)."""

    leg: MeetingLeg
    conn: Conn | None
    sender: int | None


@dataclass(slots=True)
class _Room:
    legs: set[bytes] = field(default_factory=set)
    senders: set[int] = field(default_factory=set)


class MeetingLegs:
    """The meeting legs and rooms of one node (or one media replica)."""

    def __init__(
        self,
        random: Callable[[int], bytes],
        *,
        allocation_timeout_ms: int = ALLOCATION_TIMEOUT_MS,
        max_participants: int = MAX_PARTICIPANTS,
    ) -> None:
        self._random = random
        self._allocation_timeout = allocation_timeout_ms
        self._max = max_participants
        self._legs: dict[bytes, MeetingLeg] = {}
        self._rooms: dict[bytes, _Room] = {}
        self._conn_legs: dict[Conn, set[bytes]] = {}
        self.taken: Callable[[bytes, int], bool] = _none_taken
        """Whether a sender id is taken in a room by something else than a leg here (a
        cascade link's far sender; set by the shell): a fresh draw avoids it."""

    # --- legs --------------------------------------------------------------------------------
    def join(self, owner: Owner, room: bytes, layers: tuple[LayerSpec, ...], now: int) -> Leg:
        """A new leg of ``owner`` in ``room`` (created if new), sending ``layers``.
        ``meeting.full`` if the room holds its maximum; ``ValueError`` for bad layers."""
        check_layers(layers)
        state = self._rooms.get(room)
        if state is not None and len(state.legs) >= self._max:
            raise NodeError(MEETING_FULL, "the meeting room is full")
        leg_id = self._fresh_leg_id()
        secret = self._random(LEG_SECRET_BYTES)
        deadline = now + self._allocation_timeout
        leg = MeetingLeg(leg_id, owner, room, secret_hash(secret), layers, deadline)
        self._legs[leg_id] = leg
        self._rooms.setdefault(room, _Room()).legs.add(leg_id)
        return Leg(leg_id, secret, deadline)

    def owns(self, leg_id: bytes) -> bool:
        """Whether ``leg_id`` is a meeting leg of this node (not a call leg)."""
        return leg_id in self._legs

    def get(self, leg_id: bytes) -> MeetingLeg | None:
        """The leg ``leg_id``, if it lives."""
        return self._legs.get(leg_id)

    def bind(self, conn: Conn, leg_id: bytes, secret: bytes, now: int) -> Binding:
        """Bind the media connection ``conn`` to ``leg_id`` by its secret, with a fresh
        sender id. ``call.no_leg``, ``call.expired`` or ``call.bad_secret`` otherwise."""
        leg = self._legs.get(leg_id)
        if leg is None:
            raise NodeError(CALL_NO_LEG, "no such meeting leg")
        if leg.conn is None and leg.deadline <= now:
            raise NodeError(CALL_EXPIRED, "the meeting leg expired")
        if not secret_matches(leg.secret_hash, secret):
            raise NodeError(CALL_BAD_SECRET, "the leg secret does not match")
        room = self._rooms[leg.room]
        replaced = None
        if leg.conn is not None and leg.sender is not None:
            replaced = (leg.conn, leg.sender)
            self._detach(leg, now)
        sender = self._fresh_sender(leg.room, room)
        leg.conn, leg.sender = conn, sender
        self._conn_legs.setdefault(conn, set()).add(leg_id)
        return Binding(leg, sender, replaced)

    def unbind(self, conn: Conn, now: int) -> list[tuple[MeetingLeg, int]]:
        """The media connection ``conn`` went: its legs wait, unbound, for a rebind until
        the allocation timeout; each with the sender id it had (it leaves the room)."""
        out = []
        for leg_id in sorted(self._conn_legs.get(conn, ())):
            leg = self._legs[leg_id]
            sender = leg.sender
            self._detach(leg, now)
            if sender is not None:
                out.append((leg, sender))
        return out

    def leave(self, owner: Owner, leg_id: bytes) -> Left:
        """``owner`` ends its leg ``leg_id``; ``call.no_leg`` if it holds no such leg. The
        caller takes the connection it was bound to (if any) out of the room."""
        leg = self._legs.get(leg_id)
        if leg is None or leg.owner != owner:
            raise NodeError(CALL_NO_LEG, "no such meeting leg")
        left = Left(leg, leg.conn, leg.sender)
        self._end(leg)
        return left

    def expire(self, now: int) -> list[MeetingLeg]:
        """End the unbound legs past their deadline (they were never bound in time, or
        their connection went and none came back)."""
        gone = [leg for leg in self._legs.values() if leg.conn is None and leg.deadline <= now]
        for leg in gone:
            self._end(leg)
        return gone

    # --- views -------------------------------------------------------------------------------
    def has_room(self, room: bytes) -> bool:
        """Whether ``room`` holds a leg."""
        return room in self._rooms

    @property
    def rooms(self) -> int:
        """Rooms that hold a leg."""
        return len(self._rooms)

    @property
    def legs(self) -> int:
        """Meeting legs held, bound or not."""
        return len(self._legs)

    def legs_on(self, conn: Conn) -> list[MeetingLeg]:
        """The legs ``conn`` carries."""
        return [self._legs[leg_id] for leg_id in sorted(self._conn_legs.get(conn, ()))]

    # --- internals ---------------------------------------------------------------------------
    def _detach(self, leg: MeetingLeg, now: int) -> None:
        conn, leg.conn = leg.conn, None
        if leg.sender is not None:
            self._rooms[leg.room].senders.discard(leg.sender)
            leg.sender = None
        leg.deadline = now + self._allocation_timeout
        held = self._conn_legs.get(conn) if conn is not None else None
        if held is not None:
            held.discard(leg.leg_id)
            if not held:
                del self._conn_legs[conn]

    def _end(self, leg: MeetingLeg) -> None:
        self._detach(leg, _UNBOUND_NEVER)
        del self._legs[leg.leg_id]
        room = self._rooms[leg.room]
        room.legs.discard(leg.leg_id)
        if not room.legs:
            del self._rooms[leg.room]

    def _fresh_leg_id(self) -> bytes:
        while True:
            leg_id = self._random(LEG_ID_BYTES)
            if leg_id not in self._legs:
                return leg_id

    def _fresh_sender(self, key: bytes, room: _Room) -> int:
        while True:
            sender = int.from_bytes(self._random(_SENDER_BYTES), "big")
            if sender not in room.senders and not self.taken(key, sender):
                room.senders.add(sender)
                return sender


def _none_taken(room: bytes, sender: int) -> bool:
    """The default ``taken``: no sender id is taken outside the legs."""
    return False
