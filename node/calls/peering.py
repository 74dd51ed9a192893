"""The bridges on one node-to-node media link, sans I/O (DESIGN section 9; issue 17, the
rendezvous): what a node does with each ``wire.media_link`` bridge message, and which
messages it owes its peer when a leg ends.

Pure: no trio, no socket, no clock (``now`` is Unix ms, passed in). The trio shell
(``node.calls.links``) authenticates the link, feeds this object the control messages
that arrive on it and the :class:`~node.calls.events.Ended` legs the relay reports, and
carries out the :class:`Step` it returns: messages to send, legs that ended (to report as
any ended leg), and answers for the ``bridge`` calls waiting on a ``LinkJoin``.

One object per link, over the node's one :class:`~node.calls.core.CallRelay`; the link
itself (the shell's object) is the ``Conn`` and the ``Owner`` of its remote legs, and
:attr:`domain` is all the relay learns of the far side. A peer may only join this node's
client legs (``accept_remote`` refuses a remote leg): a link never forwards to a third
domain, and no message on it can ask for that. In cluster mode (:attr:`LinkBridges.carries`)
a peer's join of a leg this replica does not hold is handed to the shell
(:attr:`Step.carried`), which chains it to the replica of this domain that ``CallLegs``
records for the leg, if any (``node.calls.replicas``): another replica of this domain is
no third domain, and the chain's far half is a ``LinkJoin`` of the leg the peer named.

Channels (``node.calls.core``): ``channel`` is the sender id this node chose for a bridge
(the peer puts it in the datagrams it sends us), ``far_channel`` the peer's. A bridge we
asked for is *pending* until ``LinkJoined``; one that ended while pending is answered
``LinkEnd`` if the peer's ``LinkJoined`` comes after all, so the peer never keeps half a
bridge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from node.calls.core import CallRelay
from node.calls.events import Ended
from node.calls.legs import Conn
from node.errors import CALL_EXPIRED, CALL_LEG_TAKEN, CALL_NO_LEG, CALL_UNREACHABLE, NodeError
from wire.media_link import LinkBridgeMessage, LinkEnd, LinkJoin, LinkJoined, LinkJoinRefused

REFUSAL_CODES: Final = frozenset({CALL_NO_LEG, CALL_LEG_TAKEN, CALL_EXPIRED})
"""The codes a peer may refuse a join with; any other is taken as ``call.no_leg``."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of our ``LinkJoin`` for the bridge ``channel``: joined when ``code`` is
    None, else refused (or abandoned) with that stable code."""

    channel: int
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What the shell does after one input: send ``replies`` on the link (in order), report
    ``ended`` as the relay's other ended legs, wake the ``bridge`` calls of ``answers``, and
    carry each join of ``carried`` on to the replica holding its leg (``carries``)."""

    replies: tuple[LinkBridgeMessage, ...] = ()
    ended: tuple[Ended, ...] = ()
    answers: tuple[Answer, ...] = ()
    carried: tuple[LinkJoin, ...] = ()


NOTHING: Final = Step()


@dataclass(frozen=True, slots=True)
class ReplicaPeer:
    """Another replica of this node's own domain, as a media link's peer (issue 18, item
    4; docs/kubernetes.md "The leg's replica"): its replica id and the internal media
    address it announced (``MediaPlacement.announce_media``). A link to it is made as one
    to a peer domain, with this domain's own pin and server key on both ends."""

    replica: bytes
    address: str
    port: int


LinkPeer = str | ReplicaPeer
"""Who a media link goes to: a peer domain (its name) or a replica of this domain."""
DOMAIN_KIND: Final = "domain"
REPLICA_KIND: Final = "replica"
LINK_KINDS: Final = (DOMAIN_KIND, REPLICA_KIND)
"""The kinds of media links (``/metrics``)."""


class LinkBridges:
    """The bridges of one link (``link``, to the peer domain ``domain``) in the relay."""

    def __init__(self, core: CallRelay, link: Conn, domain: str) -> None:
        if not domain or "@" in domain:
            raise ValueError("a link knows a peer domain, never an address")
        self.core = core
        self.link = link
        self.domain = domain.lower()
        self._pending: set[int] = set()
        self._joined: set[int] = set()
        self.closed = False
        self.carries = False
        """Cluster mode, a peer domain's link (``node.calls.links``): a ``LinkJoin`` of a
        leg this replica does not hold is carried (:attr:`Step.carried`), not refused;
        the shell refuses it unless ``CallLegs`` records the leg at another replica."""

    @property
    def pending(self) -> frozenset[int]:
        """Our channels of bridges waiting for the peer's answer."""
        return frozenset(self._pending)

    @property
    def joined(self) -> frozenset[int]:
        """Our channels of bridges both nodes joined."""
        return frozenset(self._joined)

    def request(self, leg_id: bytes, far_leg: bytes, now: int) -> LinkJoin:
        """Bridge our client leg ``leg_id`` to the peer's leg ``far_leg`` (the caller's
        side): the ``LinkJoin`` to send. :class:`~node.errors.NodeError` as
        :meth:`CallRelay.bridge_remote` refuses (``call.no_leg``, ``call.expired``,
        ``call.leg_taken``), or ``call.unreachable`` once the link is closed."""
        if self.closed:
            raise NodeError(CALL_UNREACHABLE, f"the media link to {self.domain} is closed")
        channel = self.core.bridge_remote(leg_id, self.link, self.domain, now)
        self._pending.add(channel)
        return LinkJoin(far_leg, channel)

    def request_half(self, far_leg: bytes, now: int) -> LinkJoin:
        """The ``LinkJoin`` of a chain's far half (``CallRelay.open_remote``): the peer's
        leg ``far_leg``, joined for a bridge that another link's peer asked for (the
        middle replica's side). Refused as :meth:`request`."""
        if self.closed:
            raise NodeError(CALL_UNREACHABLE, f"the media link to {self.domain} is closed")
        channel = self.core.open_remote(self.link, self.domain, now)
        self._pending.add(channel)
        return LinkJoin(far_leg, channel)

    def accept_chain(self, join: LinkJoin, out: Conn, out_channel: int, now: int) -> Step:
        """Answer the carried ``join`` once its far half ``out_channel`` on ``out`` is
        joined: the near half bridged to it (``CallRelay.chain_remote``) and the
        ``LinkJoined`` to send. ``call.unreachable`` once this link is closed, ``call.no_leg``
        if the far half went meanwhile."""
        if self.closed:
            raise NodeError(CALL_UNREACHABLE, f"the media link to {self.domain} is closed")
        channel = self.core.chain_remote(
            self.link, self.domain, join.channel, out, out_channel, now
        )
        self._joined.add(channel)
        return Step((LinkJoined(join.channel, channel),))

    def abandon(self, channel: int) -> None:
        """Give up the pending bridge ``channel`` (no answer in time): the client leg stays,
        unbridged; a late ``LinkJoined`` is answered ``LinkEnd``."""
        if channel in self._pending:
            self._pending.discard(channel)
            self.core.unbridge_remote(self.link, channel)

    def receive(self, message: LinkBridgeMessage, now: int) -> Step:
        """What to do with a bridge message that arrived on the link."""
        if isinstance(message, LinkJoin):
            return self._on_join(message, now)
        if isinstance(message, LinkJoined):
            return self._on_joined(message)
        if isinstance(message, LinkJoinRefused):
            return self._on_refused(message.channel, message.code)
        return self._on_end(message.channel)

    def ended(self, legs: Iterable[Ended]) -> Step:
        """The relay ended ``legs``; for each remote leg of this link, the ``LinkEnd`` the
        peer is owed (a joined bridge), or the answer to a ``bridge`` still waiting
        (``call.no_leg``: our leg ended first)."""
        replies: list[LinkBridgeMessage] = []
        answers: list[Answer] = []
        for leg in legs:
            if not leg.remote or leg.owner is not self.link or leg.channel is None:
                continue
            if leg.channel in self._joined and leg.far_channel is not None:
                self._joined.discard(leg.channel)
                replies.append(LinkEnd(leg.far_channel))
            elif leg.channel in self._pending:
                self._pending.discard(leg.channel)
                answers.append(Answer(leg.channel, CALL_NO_LEG))
        return Step(tuple(replies), (), tuple(answers))

    def close(self) -> Step:
        """The link is gone: every bridge on it ends (``CallRelay.drop_owner``), and every
        waiting ``bridge`` is answered ``call.unreachable``. Nothing is sent."""
        self.closed = True
        answers = tuple(Answer(channel, CALL_UNREACHABLE) for channel in sorted(self._pending))
        self._pending.clear()
        self._joined.clear()
        return Step((), tuple(self.core.drop_owner(self.link)), answers)

    # --- inputs ------------------------------------------------------------------------------

    def _on_join(self, message: LinkJoin, now: int) -> Step:
        """The peer asks to join our client leg (the callee's side)."""
        try:
            channel = self.core.accept_remote(
                message.leg_id, self.link, self.domain, message.channel, now
            )
        except NodeError as refusal:
            if refusal.code == CALL_NO_LEG and self.carries:
                return Step(carried=(message,))
            return Step((LinkJoinRefused(message.channel, refusal.code),))
        self._joined.add(channel)
        return Step((LinkJoined(message.channel, channel),))

    def _on_joined(self, message: LinkJoined) -> Step:
        channel = message.channel
        if channel not in self._pending:  # abandoned, or ended while pending
            return Step((LinkEnd(message.far_channel),))
        self._pending.discard(channel)
        try:
            self.core.remote_joined(self.link, channel, message.far_channel)
        except NodeError:
            return Step((LinkEnd(message.far_channel),), (), (Answer(channel, CALL_NO_LEG),))
        self._joined.add(channel)
        return Step((), (), (Answer(channel),))

    def _on_refused(self, channel: int, code: str) -> Step:
        if channel not in self._pending:
            return NOTHING
        self._pending.discard(channel)
        self.core.unbridge_remote(self.link, channel)
        return Step((), (), (Answer(channel, code if code in REFUSAL_CODES else CALL_NO_LEG),))

    def _on_end(self, channel: int) -> Step:
        if channel in self._pending:  # ended before it was joined: as a refusal
            return self._on_refused(channel, CALL_NO_LEG)
        if channel not in self._joined:
            return NOTHING
        self._joined.discard(channel)
        return Step((), tuple(self.core.end_remote(self.link, channel)))
