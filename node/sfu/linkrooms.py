"""The trio side of cascaded meetings (DESIGN section 9; issue 18, "across domains,
cascaded"): the meeting shell's rooms anchored at other domains, joined over the node's
media links, around the pure :class:`~node.sfu.cascade.Cascade`.

    remote = LinkRooms(cascade, pending=..., emptied=...)
    remote.opener = media_links                  # node.calls.links.MediaLinks
    key = await remote.enter("a.example", room)  # the local room, joined at the anchor

:meth:`LinkRooms.enter` opens (or reuses) the one media link to the anchor's domain,
authenticated as for calls, and sends ``RoomJoin``; concurrent joins of the same room wait
for the same answer, for at most :data:`JOIN_TIMEOUT` seconds. Refusals are
:class:`~node.errors.NodeError`: the anchor's ``meeting.no_room``, ``call.unreachable``
(no link, no answer in time, the link went) or the link's own refusals (``fed.policy``...).

Room messages that arrive on a link, and the link going, come through
:meth:`LinkRooms.receive` and :meth:`LinkRooms.link_down`; each :class:`~node.sfu.cascade.Step`
is carried out here: messages onto their links, notices to the shell's pending list (sent
at its next tick), answers to waiting joins, emptied rooms to the shell's end check.

:meth:`LinkRooms.enter_at` joins the same way at another replica of this domain that
holds the room (cluster mode, ``node.sfu.placement``), naming the room by its key there.

A local room whose link to the anchor went (its participants meet only each other then)
is joined again by :meth:`LinkRooms.run` every :data:`REJOIN_INTERVAL` seconds while it
holds a leg, over a new link; the anchor learns its senders again at the join.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import trio

from node.calls.peering import LinkPeer, ReplicaPeer
from node.errors import CALL_UNAVAILABLE, CALL_UNREACHABLE, NodeError
from node.sfu.cascade import Cascade, Send, Step, room_key
from node.sfu.model import Notice
from transport import MediaTransport
from wire.media_link import LinkRoomMessage

JOIN_TIMEOUT: Final = 5.0
"""Seconds a join waits for the anchor's ``RoomJoined``."""
REJOIN_INTERVAL: Final = 2.0
"""Seconds between two looks for local rooms that lost their anchor's link (``run``)."""
DIRECTIONS: Final = ("in", "out")


class MeetingLink(Protocol):
    """A media link as the meetings use it (``node.calls.links.PeerLink``): hashable by
    identity, its QUIC connection for datagrams, and a queue for control messages."""

    def __hash__(self) -> int: ...

    @property
    def domain(self) -> str: ...

    @property
    def channel(self) -> MediaTransport: ...

    def send(self, message: LinkRoomMessage) -> None: ...


class LinkOpener(Protocol):
    """Who opens the media link to a domain or a replica (``node.calls.links.MediaLinks``)."""

    async def room_link(self, peer: LinkPeer) -> MeetingLink: ...


Rejoin = Callable[[str, bytes], Awaitable[object]]
"""``rejoin(anchor, room)``: join again a local room that lost its upstream link."""


@dataclass(eq=False)
class _Join:
    done: trio.Event = field(default_factory=trio.Event)
    code: str | None = None


@dataclass(frozen=True)
class _Remote:
    """A local room joined upstream: the meeting's ``anchor`` domain and ``room`` id, the
    ``link`` to where it is joined, and that ``peer`` (the anchor's node, or the replica
    of this domain holding the room)."""

    anchor: str
    room: bytes
    link: MeetingLink
    peer: LinkPeer


def link_of(port_link: Hashable) -> MeetingLink:
    """A cascade port's link as the shell holds it."""
    return cast(MeetingLink, port_link)


class LinkRooms:
    """The rooms of this node anchored elsewhere, and the link traffic of all rooms."""

    def __init__(
        self,
        cascade: Cascade,
        *,
        pending: Callable[[Sequence[Notice]], object],
        emptied: Callable[[bytes], object],
        join_timeout: float = JOIN_TIMEOUT,
    ) -> None:
        self.cascade = cascade
        self.opener: LinkOpener | None = None
        """Set by ``node.server`` to the node's ``MediaLinks``; None: no cascade."""
        self._pending, self._emptied = pending, emptied
        self._join_timeout = join_timeout
        self._remote: dict[bytes, _Remote] = {}
        self._joins: dict[bytes, _Join] = {}
        self.rejoin: Rejoin = self._enter_again
        """What :meth:`run` does with an orphan (the shell's, in cluster mode: it places
        the room again, since its holder may have gone)."""
        self.bytes: dict[str, int] = dict.fromkeys(DIRECTIONS, 0)
        """Bytes of meeting datagrams received from (``in``) and sent on (``out``) links."""
        self.datagrams: dict[str, int] = dict.fromkeys(DIRECTIONS, 0)

    def is_remote(self, key: bytes) -> bool:
        """Whether ``key`` is a local room joined upstream (at another domain, or at the
        replica of this domain that holds it)."""
        return key in self._remote

    def joined(self, key: bytes) -> bool:
        """Whether the local room ``key`` is joined upstream now."""
        remote = self._remote.get(key)
        return remote is not None and self.cascade.joined(remote.link, key)

    def held_at_replica(self, key: bytes) -> bool:
        """Whether ``key`` is joined at (or was, and will be again at) another replica of
        this domain: not held here."""
        remote = self._remote.get(key)
        return remote is not None and isinstance(remote.peer, ReplicaPeer)

    def anchor(self, key: bytes) -> str | None:
        """The anchor domain of the local room ``key`` joined upstream (None: not one)."""
        remote = self._remote.get(key)
        return None if remote is None else remote.anchor

    def at_replicas(self) -> list[tuple[bytes, bytes]]:
        """``(key, replica id)`` of the local rooms joined at another replica now."""
        return [
            (key, remote.peer.replica)
            for key, remote in self._remote.items()
            if isinstance(remote.peer, ReplicaPeer) and self.cascade.joined(remote.link, key)
        ]

    def let_go(self, key: bytes) -> None:
        """Leave the upstream of ``key`` (its holder is not the replica it is joined at any
        more): the room is an orphan, placed again by :meth:`run`."""
        remote = self._remote.get(key)
        if remote is not None:
            self.apply(self.cascade.leave(remote.link, key))

    def detach(self, key: bytes) -> None:
        """Forget the upstream of the orphan ``key``: it has been placed on this replica."""
        self._remote.pop(key, None)

    def joining(self, key: bytes) -> bool:
        """Whether a join of ``key`` waits for the anchor."""
        return key in self._joins

    async def enter(self, anchor: str, room: bytes) -> bytes:
        """The local key of ``room`` anchored at ``anchor``, joined there (see the module
        docstring for the refusals)."""
        return await self.enter_at(room_key(anchor, room), anchor.lower(), room, anchor.lower())

    async def enter_at(self, key: bytes, anchor: str, room: bytes, peer: LinkPeer) -> bytes:
        """Join the local room ``key`` (of ``room`` anchored at ``anchor``) at ``peer``:
        the anchor's node (the link names ``room``), or the replica of this domain that
        holds ``key`` (the link names ``key``, that replica's room)."""
        while True:
            remote = self._remote.get(key)
            if remote is not None and self.cascade.joined(remote.link, key):
                return key
            waiting = self._joins.get(key)
            if waiting is None:
                break
            await waiting.done.wait()
            if waiting.code is not None:
                raise NodeError(waiting.code, f"the meeting room at {peer} was not joined")
        await self._join(key, anchor, room, peer)
        return key

    def orphans(self, live: Callable[[bytes], bool]) -> list[tuple[str, bytes]]:
        """``(anchor, room)`` of the local rooms that ``live`` says hold a leg but that are
        neither joined at their anchor nor joining."""
        return [
            (remote.anchor, remote.room)
            for key, remote in self._remote.items()
            if live(key) and key not in self._joins and not self.cascade.joined(remote.link, key)
        ]

    async def run(
        self,
        live: Callable[[bytes], bool],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join again, every :data:`REJOIN_INTERVAL` seconds, the :meth:`orphans`."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                await trio.sleep(REJOIN_INTERVAL)
                for anchor, room in self.orphans(live):
                    nursery.start_soon(self._rejoin, anchor, room)

    async def _rejoin(self, anchor: str, room: bytes) -> None:
        with contextlib.suppress(NodeError):  # tried again later
            await self.rejoin(anchor, room)

    async def _enter_again(self, anchor: str, room: bytes) -> None:
        await self.enter(anchor, room)

    def forget(self, key: bytes) -> list[Send]:
        """The local room ``key`` ended: ``RoomEnd`` to the links in it."""
        self._remote.pop(key, None)
        return self.cascade.end_room(key)

    def receive(self, link: MeetingLink, message: LinkRoomMessage) -> None:
        """A room message that arrived on ``link``."""
        self.apply(self.cascade.receive(link, message))

    def link_down(self, link: MeetingLink) -> None:
        """``link`` closed: its rooms' ports leave, pending joins fail."""
        self.apply(self.cascade.link_down(link))

    def send(self, sends: Iterable[Send]) -> None:
        """Queue each message on its link."""
        for send in sends:
            link_of(send.link).send(send.message)

    def apply(self, step: Step) -> None:
        """Carry out what the cascade decided."""
        self.send(step.sends)
        if step.notices:
            self._pending(step.notices)
        for answer in step.answers:
            waiting = self._joins.get(answer.key)
            if waiting is not None:
                waiting.code = answer.code
                waiting.done.set()
        for key in step.emptied:
            self._emptied(key)

    def count(self, direction: str, datagrams: Sequence[bytes]) -> None:
        """Meeting datagrams that crossed a link in ``direction``."""
        self.datagrams[direction] += len(datagrams)
        self.bytes[direction] += sum(map(len, datagrams))

    async def _join(self, key: bytes, anchor: str, room: bytes, peer: LinkPeer) -> None:
        if self.opener is None:
            raise NodeError(CALL_UNAVAILABLE, "this node links no meetings to other domains")
        waiting = self._joins[key] = _Join()
        previous = self._remote.get(key)
        link: MeetingLink | None = None
        try:
            try:
                link = await self.opener.room_link(peer)
            except NodeError as refusal:
                waiting.code = refusal.code
                raise
            self._remote[key] = _Remote(anchor, room, link, peer)
            wire = key if isinstance(peer, ReplicaPeer) else room
            self.send([self.cascade.join(link, key, wire)])
            with trio.move_on_after(self._join_timeout):
                await waiting.done.wait()
        finally:
            del self._joins[key]
            if not waiting.done.is_set():
                waiting.code = waiting.code or CALL_UNREACHABLE
                waiting.done.set()
                if link is not None:
                    self.cascade.abandon(link, key)
        if waiting.code is not None:
            if self.cascade.linked(key):
                pass
            elif previous is not None and isinstance(previous.peer, ReplicaPeer):
                self._remote[key] = previous  # an orphan of a replica: placed again later
            else:
                self._remote.pop(key, None)
            raise NodeError(waiting.code, f"the meeting room at {peer} was not joined")
