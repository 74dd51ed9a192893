"""The bind elsewhere: client media connections relayed between the replicas of one domain
(DESIGN section 9; issue 18, item 4; docs/kubernetes.md "The leg's replica").

    relays = BindRelays(service, links, store.call_legs, store.media_placement,
                        replica=replica_id, random=..., now_ms=...)
    await nursery.start(relays.run)
    service.elsewhere = relays             # binds of legs this replica does not hold
    links.relays = relays                  # relay messages and envelopes on replica links

A client gets its leg (``LegGrant``, a call's or a meeting's) from the replica serving its
WebSocket, then opens its QUIC connection to the domain's media port; in Kubernetes the UDP
load balancer may send that connection to another replica. That replica, the *front*,
serves it as a QUIC-aware load balancer's backend would: it is a relay of that one
connection, never a second owner of the leg.

1. It reads the leg's ``CallLegs`` record and checks the secret against its hash in
   constant time (``node.calls.relaying.judge_bind``): ``call.no_leg``,
   ``call.expired`` or ``call.bad_secret`` are answered ``MediaRefused`` at once, as a
   local bind would be, and nothing goes to another replica.
2. It opens (or reuses) its replica link to the leg's replica, at the address that replica
   announced (``MediaPlacement.media_address``), and sends ``RelayBind{relay, leg_id,
   leg_secret}`` (``wire.media_link``). No address, no link: ``call.unreachable``.
3. The holding replica serves a :class:`RelayedChannel` exactly as a QUIC connection it
   accepted whose first control message was that ``MediaBind``
   (``CallService.serve_channel``): the call relay or the meeting's forwarding unit binds
   the leg and answers ``MediaBound`` or ``MediaRefused``.
4. From then on the front passes everything through, byte for byte: the client's control
   messages and the holder's (``RelayControl``: ``MediaBound``, the meetings' ``MediaVideo``
   requests, ``MediaLayer`` and ``MediaKeyframe`` notices), and the datagrams both ways, in
   an envelope on the link (``wrap_relayed``: 5 bytes before the client's datagram).
5. Whoever ends first tells the other (``RelayClose``): the holder closing the connection
   (the leg ended, a rebind replaced it) closes the client's with the same code; the client
   going ends the holder's side (its leg then waits for a rebind, as when a connection
   drops). A link that goes ends every connection relayed over it, on both sides (the front
   closes the client's with ``CLOSE_RELAY_GONE``: it binds again).

Relays are opened only by the dialling side of a link (a front dials the holder); a
``RelayBind`` on a link this replica dialled, or naming a relay id in use, is answered
``RelayClose``. A relay message naming no relay is ignored; nothing here raises into the
link's task. Replica links also carry a keep-alive (:meth:`BindRelays.tend`): each side
sends ``LinkPing`` every :data:`KEEPALIVE_INTERVAL` seconds and closes a link on which
nothing arrived for :data:`KEEPALIVE_TIMEOUT` seconds, so a dead replica's link goes in
seconds rather than at the QUIC idle timeout.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import trio

from node.calls.peering import REPLICA_KIND, ReplicaPeer
from node.calls.peerlink import PeerLink
from node.calls.relayends import Front, RelayedChannel
from node.calls.relaying import HandOn, Liveness, Refusal, fresh_relay_id, judge_bind
from node.calls.shell import CallService
from node.errors import CALL_UNREACHABLE, NodeError
from node.store import StoreError
from node.store.ports import CallLegs, MediaPlacement
from transport import (
    MAX_DATAGRAM_PAYLOAD,
    MediaChannel,
    TransportError,
)
from wire import WireError, encode
from wire.media_control import (
    CLOSE_BIND_REFUSED,
    CLOSE_LEG_ENDED,
    CLOSE_MALFORMED_CONTROL,
    MediaBind,
    MediaRefused,
    decode_bind,
)
from wire.media_link import (
    CLOSE_LINK_PROTOCOL,
    CLOSE_LINK_SILENT,
    CLOSE_RELAY_GONE,
    RELAY_ENVELOPE,
    LinkPing,
    LinkRelayMessage,
    RelayBind,
    RelayClose,
    RelayControl,
    unwrap_relayed,
)

log = logging.getLogger("sealrelay.node.calls.relayed")

KEEPALIVE_INTERVAL: Final = 2.5
"""Seconds between two ``LinkPing`` on a replica link."""
KEEPALIVE_TIMEOUT: Final = 10.0
"""Seconds without anything arriving on a replica link before it is closed."""

Key = tuple[PeerLink, int]


class Dialer(Protocol):
    """What the front needs of ``node.calls.links.MediaLinks``."""

    async def room_link(self, peer: ReplicaPeer) -> PeerLink: ...


class BindRelays:
    """This replica's relayed client connections, both as a front and as a holder (module
    docstring)."""

    def __init__(
        self,
        service: CallService,
        links: Dialer,
        store: CallLegs,
        placement: MediaPlacement,
        *,
        replica: bytes,
        random: Callable[[int], bytes],
        now_ms: Callable[[], int],
        keepalive: float = KEEPALIVE_INTERVAL,
        silence: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        self._service, self._links, self._store, self._placement = service, links, store, placement
        self._replica, self._random, self._now = replica, random, now_ms
        self._keepalive, self._silence = keepalive, silence
        self._relays: dict[Key, Front | RelayedChannel] = {}
        self._nursery: trio.Nursery | None = None
        self.counts: dict[str, int] = {}
        """Binds handed on (``relayed``), refused here (by code), and served for another
        replica (``served``)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the holder's side of relayed connections until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    @property
    def open(self) -> int:
        """Connections relayed now (both roles)."""
        return len(self._relays)

    # --- the front --------------------------------------------------------------------------

    async def serve(self, channel: MediaChannel, first: bytes) -> None:
        """``CallService.elsewhere``: the bind ``first`` names a leg not held here."""
        try:
            request = decode_bind(first)
        except WireError:
            channel.close(CLOSE_MALFORMED_CONTROL, "malformed control message")
            return
        verdict = await self._judge(request)
        if isinstance(verdict, Refusal):
            await self._refuse(channel, verdict)
            return
        try:
            link = await self._link_to(verdict.replica)
        except NodeError as exc:
            await self._refuse(channel, Refusal(exc.code, exc.message))
            return
        relay = fresh_relay_id(self._random, {r for (on, r) in self._relays if on is link})
        if relay is None:
            await self._refuse(channel, Refusal(CALL_UNREACHABLE, "no relay id free"))
            return
        front = self._relays[(link, relay)] = Front(channel, link, relay)
        self._count("relayed")
        try:
            link.send(RelayBind(relay, request.leg_id, request.leg_secret))
            await front.pump()
        finally:
            if self._relays.get((link, relay)) is front:
                del self._relays[(link, relay)]
            if not front.ended:
                link.send(RelayClose(relay, CLOSE_LEG_ENDED, "the client went"))
            channel.close(CLOSE_LEG_ENDED, "unbound")

    async def _judge(self, request: MediaBind) -> HandOn | Refusal:
        now = self._now()
        try:
            record = await self._store.leg(request.leg_id, now)
        except StoreError:
            return Refusal(CALL_UNREACHABLE, "the call legs cannot be read")
        return judge_bind(record, request.leg_secret, now, self._replica)

    async def _link_to(self, replica: bytes) -> PeerLink:
        try:
            found = await self._placement.media_address(replica, self._now())
        except StoreError:
            found = None
        if found is None:
            raise NodeError(CALL_UNREACHABLE, "the leg's replica announced no media address")
        return await self._links.room_link(ReplicaPeer(replica, found.address, found.port))

    async def _refuse(self, channel: MediaChannel, refusal: Refusal) -> None:
        self._count("refused_" + refusal.code)
        self._service.counters.refused += 1
        with contextlib.suppress(TransportError):
            await channel.send_control(encode(MediaRefused(refusal.code, refusal.message)))
        channel.close(CLOSE_BIND_REFUSED, refusal.code)

    # --- the links --------------------------------------------------------------------------

    def receive_relay(self, link: PeerLink, message: LinkRelayMessage) -> None:
        """A relay message on ``link`` (``MediaLinks``' reader); never raises."""
        if isinstance(message, LinkPing):
            return
        if isinstance(message, RelayBind):
            self._open(link, message)
            return
        found = self._relays.get((link, message.relay))
        if found is None:
            return  # ended meanwhile
        if isinstance(message, RelayControl):
            found.deliver_control(message.message)
        elif isinstance(found, Front):
            del self._relays[(link, message.relay)]
            found.end(message.code, message.reason)
        else:
            found.end()

    async def forward_relayed(self, link: PeerLink, batch: Sequence[bytes]) -> list[bytes]:
        """Deliver the relayed datagrams of ``batch`` (from ``link``); the others stay."""
        rest: list[bytes] = []
        relayed: dict[int, list[bytes]] = {}
        for data in batch:
            found = unwrap_relayed(data)
            if found is None:
                rest.append(data)
            else:
                relayed.setdefault(found[0], []).append(found[1])
        for relay, datagrams in relayed.items():
            target = self._relays.get((link, relay))
            if target is not None:
                await target.deliver_datagrams(datagrams)
        return rest

    async def tend(self, link: PeerLink) -> None:
        """While a replica link is up: let it carry enveloped datagrams, send a keep-alive
        every :data:`KEEPALIVE_INTERVAL` seconds, and close it once nothing arrived for
        :data:`KEEPALIVE_TIMEOUT` seconds."""
        if link.kind != REPLICA_KIND:
            return
        link.channel.datagram_limit = MAX_DATAGRAM_PAYLOAD + RELAY_ENVELOPE
        alive = Liveness(self._silence)
        while True:
            stats = link.channel.stats()
            if not alive.check(
                stats.control_received + stats.datagrams_received, trio.current_time()
            ):
                log.warning("replica link silent", extra={"seconds": self._silence})
                link.channel.close(CLOSE_LINK_SILENT, "nothing arrived in time")
                return
            link.send(LinkPing())
            await trio.sleep(self._keepalive)

    def relays_down(self, link: PeerLink) -> None:
        """``link`` closed: every connection relayed over it ends."""
        for key in [key for key in self._relays if key[0] is link]:
            found = self._relays.pop(key)
            if isinstance(found, Front):
                found.end(CLOSE_RELAY_GONE, "the leg's replica went")
            else:
                found.end()

    # --- the holder -------------------------------------------------------------------------

    def _open(self, link: PeerLink, message: RelayBind) -> None:
        key = (link, message.relay)
        if (
            link.outbound
            or link.kind != REPLICA_KIND
            or key in self._relays
            or self._nursery is None
        ):
            link.send(RelayClose(message.relay, CLOSE_LINK_PROTOCOL, "relay refused"))
            return
        channel = self._relays[key] = RelayedChannel(link, message.relay)
        channel.on_close = lambda: self._forget(key, channel)
        self._count("served")
        first = encode(MediaBind(message.leg_id, message.leg_secret))
        self._nursery.start_soon(self._serve_relayed, channel, first)

    async def _serve_relayed(self, channel: RelayedChannel, first: bytes) -> None:
        try:
            await self._service.serve_channel(channel, first, relayed=True)
        finally:
            channel.close(CLOSE_LEG_ENDED, "unbound")

    def _forget(self, key: Key, channel: RelayedChannel) -> None:
        if self._relays.get(key) is channel:
            del self._relays[key]

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


__all__ = ["KEEPALIVE_INTERVAL", "KEEPALIVE_TIMEOUT", "BindRelays", "Dialer"]
