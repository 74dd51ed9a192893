"""Meetings cascaded across domains, sans I/O (DESIGN section 9; issue 18, "across domains,
cascaded"): what a node sends over its media links for the rooms they carry, and what it
does with the room messages (``wire.media_link``) that arrive.

A meeting's *anchor* is its host's node. A participant of another domain joins through its
own node, which keeps a *local* room for (anchor, room): its own
:class:`~node.sfu.core.Sfu` for its own participants, joined to the anchor's room over the
one media link to the anchor's domain (``RoomJoin`` -> ``RoomJoined``). On each side the
link is one connection of the room's core, a :class:`Port`:

* it *owns* the far side's senders (``SendersAdded`` / ``SendersRemoved``): the anchor
  announces every sender of the room not owned by that port (its own participants and
  other domains' links), a member node its own participants;
* as a receiver it is an explicit subscriber (:meth:`~node.sfu.core.Sfu.add_link`): audio
  by the normal rule, video exactly the ``(sender, layer)`` set the far side asked for.
  The far core's :class:`~node.sfu.model.LayerNotice` for a sender its port owns means
  "somebody here needs / no longer needs this layer": it travels in a ``RoomLayer`` and
  becomes the subscription on this side (:meth:`~node.sfu.core.Sfu.subscribe`). A
  :class:`~node.sfu.model.KeyframeRequest` for a port-owned sender travels in a
  ``RoomKeyframe`` to the side that owns the real sender. The notices of one tick go out
  gathered per room, up to ``MAX_CHANGES`` per message (a join of a room of 200 raises
  hundreds of them at once).

So a link carries one copy of each stream somebody on the far side needs, never one per
participant, and audio selection stays global: the loudest four of a room are among the
union of each side's loudest four.

Sender ids are the 32-bit draws of the node whose participant sends. One that is taken on
this side (in its room, or by another room on the same link, whose datagrams it would
misroute), or one past ``MAX_PARTICIPANTS`` senders in the room, is refused and counted
(:attr:`Cascade.refused`), never a crash; a message about an unknown room, sender or layer
is dropped and counted (:attr:`Cascade.ignored`).
Nothing here names an account or an address: rooms, sender ids, layers and codes.

Pure: no trio, no clock, no socket. The shell (``node.sfu.shell``) gives it the rooms
(:class:`Rooms`), feeds it what arrives and what changes, and carries out each
:class:`Step`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

from node.errors import CALL_UNREACHABLE, MEETING_NO_ROOM
from node.sfu.core import Sfu
from node.sfu.model import Conn, LayerNotice, LayerSpec, Notice
from wire.media_link import (
    MAX_ANNOUNCED,
    MAX_CHANGES,
    LayerChange,
    LinkRoomMessage,
    LinkSender,
    LinkTrack,
    RoomEnd,
    RoomJoin,
    RoomJoined,
    RoomKeyframe,
    RoomLayer,
    RoomRefused,
    SendersAdded,
    SendersRemoved,
)
from wire.meeting import MAX_PARTICIPANTS
from wire.relay_meetings import MeetingLayerSpec

ROOM_KEY_BYTES: Final = 16
"""Bytes of a room's local key (the key of ``node.sfu.rooms.MeetingLegs``)."""
_KEY_LABEL: Final = b"sealrelay meeting room at "
_T = TypeVar("_T")


def room_key(anchor: str, room: bytes) -> bytes:
    """The local key of room ``room`` anchored at the node of domain ``anchor`` (another
    domain): SHA-256 over both, cut to a room id's size, so it cannot be taken for a room
    of this node nor for the same room id anchored elsewhere."""
    digest = hashlib.sha256(_KEY_LABEL + anchor.lower().encode() + b"\x00" + room)
    return digest.digest()[:ROOM_KEY_BYTES]


@dataclass(frozen=True, slots=True)
class Port:
    """The media link ``link`` in the room of local key ``key``: the link's connection in
    that room's core."""

    link: Hashable
    key: bytes


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` on ``link``."""

    link: Hashable
    message: LinkRoomMessage


@dataclass(frozen=True, slots=True)
class Answer:
    """Our ``RoomJoin`` of the room ``key``: joined when ``code`` is None, else refused
    (``meeting.no_room``) or lost (``call.unreachable``: the link went)."""

    key: bytes
    code: str | None = None


@dataclass(slots=True)
class Step:
    """What the shell does after one input: send ``sends`` (in order), send ``notices`` to
    the connections they name (a :class:`Port` among them goes back through
    :meth:`Cascade.notice`), wake the joins of ``answers``, and end the rooms of ``emptied``
    if nothing holds them any more."""

    sends: list[Send] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    emptied: list[bytes] = field(default_factory=list)


class Rooms(Protocol):
    """The shell's rooms, as the cascade needs them."""

    def core(self, key: bytes) -> Sfu:
        """The core of the room ``key``, created if it has none yet."""

    def anchored(self, room: bytes, link: Hashable) -> bool:
        """Whether ``room`` is a live room that ``link``'s far side may join here: one
        anchored at this node (for a link of another replica of this domain, also the
        local room of a room anchored elsewhere, when this replica holds it; for a peer
        domain's link, also this replica's local room of a room of this domain that
        another replica holds: ``node.sfu.peerrooms``)."""


@dataclass(slots=True, eq=False)
class _Membership:
    """One room on one link: ``anchored`` when the room is this node's (the far side is
    a member), ``joined`` once both sides hold the port."""

    port: Port
    room: bytes
    anchored: bool
    joined: bool
    senders: set[int] = field(default_factory=set)

    @property
    def yours(self) -> bool:
        """The ``yours`` of a message to the far side: the room is anchored there."""
        return not self.anchored


@dataclass(slots=True, eq=False)
class _Link:
    rooms: dict[bytes, _Membership] = field(default_factory=dict)
    wire: dict[tuple[bytes, bool], bytes] = field(default_factory=dict)
    senders: dict[int, Port] = field(default_factory=dict)


class Cascade:
    """The rooms every media link of this node carries (module docstring)."""

    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms
        self._links: dict[Hashable, _Link] = {}
        self._ports: dict[bytes, dict[Hashable, _Membership]] = {}
        self.refused = 0
        """Far senders refused: their id was taken here."""
        self.ignored = 0
        """Room messages about an unknown room, sender or layer, or out of place."""

    # --- views -------------------------------------------------------------------------------
    def linked(self, key: bytes) -> bool:
        """Whether a link is in the room ``key`` (joined, or joining)."""
        return bool(self._ports.get(key))

    def hosting(self, key: bytes) -> bool:
        """Whether a far side has joined the room ``key`` here (a member node, or another
        replica of this domain): the room lives on for it."""
        return any(held.anchored for held in self._ports.get(key, {}).values())

    def joined(self, link: Hashable, key: bytes) -> bool:
        """Whether the room ``key`` is joined on ``link``."""
        held = self._membership(link, key)
        return held is not None and held.joined

    def route(self, link: Hashable, sender: int) -> Port | None:
        """The port whose room the far sender ``sender`` of ``link`` sends in (None: not a
        meeting sender of that link)."""
        state = self._links.get(link)
        return None if state is None else state.senders.get(sender)

    # --- inputs ------------------------------------------------------------------------------
    def join(self, link: Hashable, key: bytes, room: bytes) -> Send:
        """Join the anchor's room ``room`` over ``link`` for our local room ``key``: the
        ``RoomJoin`` to send (answered in a later :class:`Step`)."""
        state = self._links.setdefault(link, _Link())
        if key not in state.rooms:
            held = _Membership(Port(link, key), room, anchored=False, joined=False)
            self._hold(state, held)
        return Send(link, RoomJoin(room))

    def abandon(self, link: Hashable, key: bytes) -> None:
        """Give up our ``RoomJoin`` of ``key`` on ``link`` (no answer in time); a late
        ``RoomJoined`` is answered ``RoomEnd``."""
        held = self._membership(link, key)
        if held is not None and not held.joined:
            self._release(held)

    def receive(self, link: Hashable, message: LinkRoomMessage) -> Step:
        """What to do with a room message that arrived on ``link``."""
        step = Step()
        if isinstance(message, RoomJoin):
            self._on_join(link, message.room, step)
            return step
        held = self._find(link, message.room, _anchored_here(message))
        if held is None:
            self.ignored += 1
            if isinstance(message, RoomJoined):  # a join we gave up on: the anchor lets go
                step.sends.append(Send(link, RoomEnd(message.room, True)))
        elif isinstance(message, RoomJoined | RoomRefused):
            self._on_answer(held, message, step)
        elif isinstance(message, RoomEnd):
            self._on_end(held, step)
        elif not held.joined:
            self.ignored += 1
        elif isinstance(message, SendersAdded):
            self._on_added(held, message.senders, step)
        elif isinstance(message, SendersRemoved):
            self._remove(held, message.senders, step)
        elif isinstance(message, RoomLayer):
            self._on_layer(held, message, step)
        else:
            core = self._rooms.core(held.port.key)
            for track in message.tracks:
                step.notices += core.keyframe(held.port, track.sender, track.layer)
        return step

    def sender_added(
        self, key: bytes, owner: Conn, sender: int, layers: tuple[LayerSpec, ...]
    ) -> list[Send]:
        """``owner`` (a participant's connection or a port) added ``sender`` to the room
        ``key``: announce it on every other link in the room."""
        entry = (LinkSender(sender, _specs(layers)),)
        return [
            Send(held.port.link, SendersAdded(held.room, held.yours, entry))
            for held in self._joined_ports(key)
            if held.port != owner
        ]

    def senders_removed(self, key: bytes, owner: Conn, senders: Sequence[int]) -> list[Send]:
        """``owner``'s ``senders`` left the room ``key``: tell every other link in it."""
        if not senders:
            return []
        return [
            Send(held.port.link, SendersRemoved(held.room, held.yours, tuple(chunk)))
            for held in self._joined_ports(key)
            if held.port != owner
            for chunk in _chunks(senders)
        ]

    def notices(self, notices: Iterable[Notice]) -> list[Send]:
        """The cores' notices for senders ports own (others are skipped): the messages to
        the sides that own the real senders, gathered per port (nothing for a port gone)."""
        changes: dict[Port, list[LayerChange]] = {}
        tracks: dict[Port, list[LinkTrack]] = {}
        for notice in notices:
            port = notice.conn
            if not isinstance(port, Port):
                continue
            if isinstance(notice, LayerNotice):
                change = LayerChange(notice.sender, notice.layer, notice.active)
                changes.setdefault(port, []).append(change)
            else:
                tracks.setdefault(port, []).append(LinkTrack(notice.sender, notice.layer))
        sends = []
        for port in dict.fromkeys([*changes, *tracks]):
            held = self._membership(port.link, port.key)
            if held is None or not held.joined:
                continue
            mine = held.senders
            wanted = [c for c in changes.get(port, ()) if c.sender in mine]
            for chunk in _chunks(wanted, MAX_CHANGES):
                sends.append(Send(port.link, RoomLayer(held.room, held.yours, chunk)))
            frames = [t for t in tracks.get(port, ()) if t.sender in mine]
            for part in _chunks(frames, MAX_CHANGES):
                sends.append(Send(port.link, RoomKeyframe(held.room, held.yours, part)))
        return sends

    def end_room(self, key: bytes) -> list[Send]:
        """The room ``key`` ended here (its core is gone): ``RoomEnd`` on every link in it."""
        sends = []
        for held in list(self._ports.get(key, {}).values()):
            self._release(held)
            sends.append(Send(held.port.link, RoomEnd(held.room, held.yours)))
        return sends

    def leave(self, link: Hashable, key: bytes) -> Step:
        """Leave the room ``key`` on ``link`` (its holder is no longer there, though the
        link is up): ``RoomEnd`` to the far side, and the port leaves as at a link down."""
        step = Step()
        held = self._membership(link, key)
        if held is None:
            return step
        step.sends.append(Send(link, RoomEnd(held.room, held.yours)))
        if held.joined:
            self._drop(held, step)
        else:
            self._release(held)
            step.answers.append(Answer(key, CALL_UNREACHABLE))
        return step

    def link_down(self, link: Hashable) -> Step:
        """``link`` closed: its ports leave their rooms, their senders are gone for the
        other links, pending joins are answered ``call.unreachable``."""
        step = Step()
        state = self._links.get(link)
        for held in list(state.rooms.values()) if state is not None else []:
            if held.joined:
                self._drop(held, step)
            else:
                self._release(held)
                step.answers.append(Answer(held.port.key, CALL_UNREACHABLE))
        self._links.pop(link, None)
        return step

    # --- the messages ------------------------------------------------------------------------
    def _on_join(self, link: Hashable, room: bytes, step: Step) -> None:
        """A member node joins our room ``room`` (we anchor it) over ``link``."""
        state = self._links.setdefault(link, _Link())
        if (room, True) in state.wire:
            step.sends.append(Send(link, RoomJoined(room)))  # a repeat: the same answer
            return
        if not self._rooms.anchored(room, link):
            step.sends.append(Send(link, RoomRefused(room, MEETING_NO_ROOM)))
            return
        held = _Membership(Port(link, room), room, anchored=True, joined=True)
        self._hold(state, held)
        step.sends.append(Send(link, RoomJoined(room)))
        self._enter(held, step)

    def _on_answer(self, held: _Membership, answer: RoomJoined | RoomRefused, step: Step) -> None:
        if held.anchored or held.joined:
            self.ignored += 1
            return
        key = held.port.key
        if isinstance(answer, RoomRefused):
            self._release(held)
            step.answers.append(Answer(key, answer.code or MEETING_NO_ROOM))
            return
        held.joined = True
        self._enter(held, step)
        step.answers.append(Answer(key))

    def _enter(self, held: _Membership, step: Step) -> None:
        """The port joins its room's core; every sender there is announced to the far
        side (none is the port's yet)."""
        core = self._rooms.core(held.port.key)
        step.notices += core.add_link(held.port)
        entries = [LinkSender(s, _specs(layers)) for s, _owner, layers in core.senders()]
        for chunk in _chunks(entries):
            step.sends.append(Send(held.port.link, SendersAdded(held.room, held.yours, chunk)))

    def _on_added(self, held: _Membership, senders: Iterable[LinkSender], step: Step) -> None:
        key, port = held.port.key, held.port
        core = self._rooms.core(key)
        routes = self._links[port.link].senders
        held_now = len(core.senders())
        for entry in senders:
            if entry.sender in routes or held_now >= MAX_PARTICIPANTS:
                self.refused += 1  # taken on this link, or the room is full
                continue
            try:
                layers = tuple(LayerSpec(x.height, x.kbps) for x in entry.layers)
                step.notices += core.join(port, entry.sender, layers)
            except ValueError:  # taken in the room, or layers out of order
                self.refused += 1
                continue
            held_now += 1
            held.senders.add(entry.sender)
            routes[entry.sender] = port
            step.sends += self.sender_added(key, port, entry.sender, layers)

    def _remove(self, held: _Membership, senders: Iterable[int], step: Step) -> None:
        core = self._rooms.core(held.port.key)
        routes = self._links[held.port.link].senders
        gone = []
        for sender in senders:
            if sender not in held.senders:
                self.ignored += 1
                continue
            held.senders.discard(sender)
            routes.pop(sender, None)
            step.notices += core.remove_sender(held.port, sender)
            gone.append(sender)
        step.sends += self.senders_removed(held.port.key, held.port, gone)

    def _on_layer(self, held: _Membership, message: RoomLayer, step: Step) -> None:
        core = self._rooms.core(held.port.key)
        for change in message.changes:
            try:
                step.notices += core.subscribe(
                    held.port, change.sender, change.layer, change.active
                )
            except ValueError:
                self.ignored += 1

    def _on_end(self, held: _Membership, step: Step) -> None:
        if held.joined:
            self._drop(held, step)
        else:  # the anchor ended the room before it answered: as a refusal
            self._release(held)
            step.answers.append(Answer(held.port.key, MEETING_NO_ROOM))

    def _drop(self, held: _Membership, step: Step) -> None:
        """The far side left the room (``RoomEnd``, or the link went): the port leaves the
        core, and its senders leave for the other links."""
        key = held.port.key
        gone = sorted(held.senders)
        self._release(held)
        core = self._rooms.core(key)
        step.notices += core.leave(held.port)
        step.sends += self.senders_removed(key, held.port, gone)
        step.emptied.append(key)

    # --- bookkeeping -------------------------------------------------------------------------
    def _hold(self, state: _Link, held: _Membership) -> None:
        state.rooms[held.port.key] = held
        state.wire[(held.room, held.anchored)] = held.port.key
        self._ports.setdefault(held.port.key, {})[held.port.link] = held

    def _release(self, held: _Membership) -> None:
        state = self._links.get(held.port.link)
        if state is not None:
            state.rooms.pop(held.port.key, None)
            state.wire.pop((held.room, held.anchored), None)
            for sender in held.senders:
                state.senders.pop(sender, None)
        ports = self._ports.get(held.port.key)
        if ports is not None:
            ports.pop(held.port.link, None)
            if not ports:
                del self._ports[held.port.key]

    def _membership(self, link: Hashable, key: bytes) -> _Membership | None:
        state = self._links.get(link)
        return None if state is None else state.rooms.get(key)

    def _find(self, link: Hashable, room: bytes, anchored: bool) -> _Membership | None:
        state = self._links.get(link)
        key = None if state is None else state.wire.get((room, anchored))
        return None if key is None or state is None else state.rooms.get(key)

    def _joined_ports(self, key: bytes) -> list[_Membership]:
        return [held for held in self._ports.get(key, {}).values() if held.joined]


def _anchored_here(message: LinkRoomMessage) -> bool:
    """Whether the room a message names is anchored at this node (its receiver)."""
    if isinstance(message, RoomJoined | RoomRefused):
        return False  # answers come from the anchor
    if isinstance(message, RoomJoin):
        return True
    return message.yours


def _specs(layers: tuple[LayerSpec, ...]) -> tuple[MeetingLayerSpec, ...]:
    return tuple(MeetingLayerSpec(x.height, x.kbps) for x in layers)


def _chunks(items: Sequence[_T], size: int = MAX_ANNOUNCED) -> list[tuple[_T, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]
