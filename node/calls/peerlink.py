"""One node-to-node media link as ``node.calls.links.MediaLinks`` holds it (DESIGN section
9; issues 17 and 18): the :class:`PeerLink` (the ``Conn`` and ``Owner`` of its remote legs,
and a port of the meeting rooms it carries), the :class:`LinkMeetings` its meeting
traffic goes to, and the links' counters.

A link's peer is a domain's node (``kind`` ``domain``), or, in cluster mode, another
replica of this node's own domain (``kind`` ``replica``; issue 18, item 4), reached at the
internal address it announced and authenticated by the domain's own keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from node.calls.core import CallRelay
from node.calls.peering import DOMAIN_KIND, LinkBridges
from transport import QuicChannel
from wire import encode
from wire.media_link import CLOSE_LINK_PROTOCOL, LinkRelayMessage, LinkRoomMessage, LinkTraffic

OUTBOX: Final = 256
"""Bridge messages queued for a link's writer; a peer that does not read is closed."""


@dataclass
class LinkCounters:
    """Links opened (by direction), and links that failed to open (by reason)."""

    connects: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class LinkMeetings(Protocol):
    """Who takes the meeting traffic of the links (``node.sfu.shell.MeetingService``)."""

    def receive_link(self, link: PeerLink, message: LinkRoomMessage) -> None:
        """A room message that arrived on ``link``."""

    async def forward_link(self, link: PeerLink, batch: Sequence[bytes]) -> list[bytes]:
        """Forward the meeting datagrams of ``batch``; the others, for the bridges."""

    def link_down(self, link: PeerLink) -> None:
        """``link`` closed."""


class LinkRelays(Protocol):
    """Who relays client connections over replica links (``node.calls.relayed``)."""

    def receive_relay(self, link: PeerLink, message: LinkRelayMessage) -> None:
        """A relay message (or a keep-alive) that arrived on ``link``."""

    async def forward_relayed(self, link: PeerLink, batch: Sequence[bytes]) -> list[bytes]:
        """Deliver the relayed datagrams of ``batch``; the others, for the link's rooms."""

    async def tend(self, link: PeerLink) -> None:
        """Run while ``link`` is up: a replica link's keep-alive."""

    def relays_down(self, link: PeerLink) -> None:
        """``link`` closed: end the connections relayed over it."""


@dataclass(eq=False)
class Waiter:
    """A ``bridge`` call waiting for the answer to its ``LinkJoin``."""

    done: trio.Event = field(default_factory=trio.Event)
    code: str | None = None


class PeerLink:
    """One authenticated link to a peer domain: the ``Conn`` and ``Owner`` of its remote
    legs in the relay (compared by identity; it names a domain, never an account)."""

    def __init__(
        self,
        core: CallRelay,
        domain: str,
        channel: QuicChannel,
        outbound: bool,
        *,
        replica: bytes | None = None,
        kind: str = DOMAIN_KIND,
    ):
        self.domain = domain
        self.channel = channel
        self.outbound = outbound
        self.kind = kind
        """``domain`` (a peer domain's node) or ``replica`` (a replica of this domain)."""
        self.replica = replica
        """The replica id of an outbound replica link (an inbound one's is not told)."""
        self.bridges = LinkBridges(core, self, domain)
        self.waiters: dict[int, Waiter] = {}
        self._out, self.outbox = trio.open_memory_channel[bytes](OUTBOX)

    def __repr__(self) -> str:
        direction = "outbound" if self.outbound else "inbound"
        return f"PeerLink({self.domain}, {self.kind}, {direction})"

    @property
    def key(self) -> str | bytes | None:
        """What :class:`MediaLinks` finds the link by for reuse: the peer domain, or the
        replica id of an outbound replica link; None for an inbound replica link (its
        peer's id is unknown: a replica dials its own link to another)."""
        if self.kind == DOMAIN_KIND:
            return self.domain
        return self.replica if self.outbound else None

    def send(self, message: LinkTraffic) -> None:
        """Queue ``message`` for the writer; a link whose peer does not read is closed."""
        try:
            self._out.send_nowait(encode(message))
        except trio.WouldBlock:
            self.channel.close(CLOSE_LINK_PROTOCOL, "link backlog")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the link is closing: its bridges end with it

    def close_outbox(self) -> None:
        self._out.close()
