"""Node-to-node media links: the trio shell that bridges a client leg of this node to a
leg of a peer domain (DESIGN section 9; issue 17, "the media path", "node-to-node links
authenticate both ends"; the plan's rendezvous).

    links = MediaLinks(service, "a.example", keyring, lambda: relay.keys, random=...)
    await nursery.start(links.run)              # also: service.accept_links(links)
    await links.bridge(leg_id, LegRef("b.example", far_leg_id))   # the LegBridge handler
    await links.bridge_at(replica_peer, leg_id, far_leg_id)   # a leg another replica holds

One QUIC link per peer domain, opened on first use and reused by every call in both
directions; a link that closes ends its bridges (``CallRelay.drop_owner``).

Outbound: the peer's key document (verified, trusted by the federation keyring) gives the
media port and the pin of its QUIC key (``trust.media``), the host is that of its
federation endpoint (``[peers]`` ``endpoints``, else ``https://DOMAIN``); TLS checks the
pin, then ``LinkHello`` -> ``LinkChallenge`` -> ``LinkProof`` -> ``LinkReady``
(``wire.media_link``, ``trust.peerlink``, ``node.calls.linkauth``) proves this node by its
server signing key. Inbound: a connection whose first control message is a ``LinkHello``
naming this domain, proved against the origin's document (the federation policy decides
which domains may link: else ``fed.policy``), or ``LinkRejected`` and closed.

On a link: datagrams go through :meth:`CallService.forward` (the link is their source and,
:meth:`CallService.attach`, their destination), bridge messages through the pure
:class:`~node.calls.peering.LinkBridges`; legs that end reach :meth:`MediaLinks.legs_ended`
(``LinkEnd`` to the peer). A peer learns this node's domain, the leg ids it was given,
channels and codes, never an account address; it joins this node's client legs only and
never reaches a third domain through it.

Meetings cascade over the same links (issue 18; ``node.sfu.cascade``): room messages and
first the datagrams go to :attr:`MediaLinks.meetings` (its ``forward_link`` takes those of
the link's meeting senders, the rest are the bridges'); :meth:`MediaLinks.room_link` opens
or reuses the link to a room's anchor; a link that closes takes its senders out.

Replicas (issue 18, item 4): in cluster mode (:attr:`MediaLinks.accept_replicas`) a peer
may be another replica of this domain (``ReplicaPeer``: dialled at the internal address it
announced, pinned to this domain's own QUIC key, proved by its own server key). Such a
link (``kind`` ``replica``) carries the rooms placed on that replica (``node.sfu.placement``),
the client connections relayed to it (:attr:`MediaLinks.relays`, ``node.calls.relayed``;
it keeps the link alive) and the chains of :meth:`MediaLinks.chain_at`: a peer domain's
``LinkJoin`` of a leg another replica holds goes to :attr:`MediaLinks.carry`
(``node.calls.replicas``). An inbound replica link is never reused for dialling.

Refusals of :meth:`MediaLinks.bridge` (:class:`~node.errors.NodeError`): ``fed.policy``,
``fed.unavailable`` / ``fed.key_document`` (its key document), ``call.unreachable`` (no
endpoint or connection, link refused, no answer in :data:`JOIN_TIMEOUT` seconds, the link
went), or the peer's ``call.no_leg``, ``call.leg_taken``, ``call.expired``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

import trio

from federation.errors import FederationError, KeyDocumentError, PolicyRefused
from federation.keyring import Keyring, VerifiedDocument
from node.calls.events import Ended
from node.calls.linkauth import LinkSigner, Refused, accept_link, prove_link, send_quietly
from node.calls.peering import (
    DOMAIN_KIND,
    LINK_KINDS,
    REPLICA_KIND,
    LinkPeer,
    ReplicaPeer,
    Step,
)
from node.calls.peerlink import LinkCounters, LinkMeetings, LinkRelays, PeerLink, Waiter
from node.calls.shell import FORWARD_BATCH, CallService, wall_clock_ms
from node.errors import CALL_UNREACHABLE, FED_POLICY, FED_UNAVAILABLE, NodeError
from transport import (
    DEFAULT_SETTINGS,
    PeerKeyMismatch,
    PinnedKey,
    QuicChannel,
    QuicSettings,
    TransportError,
)
from transport import connect_quic as _connect_quic
from trust.media import media_endpoint
from trust.peerlink import CHALLENGE_SIZE
from wire import WireError
from wire.calls import LegRef
from wire.media_link import (
    BRIDGE_MESSAGES,
    CLOSE_LINK_DONE,
    CLOSE_LINK_PROTOCOL,
    CLOSE_LINK_REJECTED,
    RELAY_MESSAGES,
    LinkJoin,
    LinkRejected,
    decode_link_traffic,
)

log = logging.getLogger("sealrelay.node.calls.links")

JOIN_TIMEOUT: Final = 5.0
"""Seconds a ``bridge`` waits for the peer's ``LinkJoined``."""
Carry = Callable[[PeerLink, LinkJoin], Awaitable[None]]  # carry(link, join); never raises
HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds for a link's hello, challenge, proof and answer (``trust.peerlink`` allows
``PROOF_WINDOW_MS`` for the proof alone)."""


class MediaLinks:
    """This node's links to peer domains (see the module docstring)."""

    def __init__(
        self,
        service: CallService,
        domain: str,
        keyring: Keyring,
        signer: Callable[[], LinkSigner],
        *,
        random: Callable[[int], bytes],
        now_ms: Callable[[], int] = wall_clock_ms,
        settings: QuicSettings = DEFAULT_SETTINGS,
        join_timeout: float = JOIN_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.service = service
        self.core = service.core
        self.domain = domain.lower()
        self.counters = LinkCounters()
        self._keyring, self._signer, self._random, self._now = keyring, signer, random, now_ms
        self._settings = settings
        self._join_timeout, self._handshake_timeout = join_timeout, handshake_timeout
        self._links: dict[str | bytes, PeerLink] = {}
        self._open: set[PeerLink] = set()
        self._locks: dict[str | bytes, trio.Lock] = {}
        self.accept_replicas = False
        """Cluster mode (``node.server``): accept links from this domain's other replicas."""
        self._nursery: trio.Nursery | None = None
        self._sockets: trio.Nursery | None = None
        self.meetings: LinkMeetings | None = None
        """The meetings cascaded over the links (set by ``node.server``)."""
        self.relays: LinkRelays | None = None
        """Client connections relayed over replica links (cluster mode; ``node.server``)."""
        self.carry: Carry | None = None
        """Cluster mode: carries a peer's join of another replica's leg (``ReplicaCalls``)."""

    @property
    def links_up(self) -> int:
        """Links open now (both directions)."""
        return len(self._open)

    def kinds_up(self) -> dict[str, int]:
        """Links open now, by kind (``domain``, ``replica``)."""
        kinds = dict.fromkeys(LINK_KINDS, 0)
        for link in self._open:
            kinds[link.kind] += 1
        return kinds

    def link(self, domain: str) -> PeerLink | None:
        """The open link to ``domain`` that ``bridge`` would use, if any."""
        link = self._links.get(domain.lower())
        return None if link is None or link.bridges.closed else link

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the links this node opens until cancelled; then close every link, so that
        each peer hears it (a QUIC CONNECTION_CLOSE) instead of waiting for the idle
        timeout: the sockets of outbound links outlive the cancellation until then."""
        async with trio.open_nursery() as nursery:
            sockets: trio.Nursery = await nursery.start(self._hold_sockets)
            self._nursery, self._sockets = nursery, sockets
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                for link in list(self._open):
                    link.channel.close(CLOSE_LINK_DONE, "node stopping")
                sockets.cancel_scope.cancel()

    @staticmethod
    async def _hold_sockets(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        """A nursery for the socket tasks of outbound links that only :meth:`run` cancels."""
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as sockets:
                task_status.started(sockets)
                await trio.sleep_forever()

    # --- the API of the LegBridge handler -----------------------------------------------

    async def bridge(self, leg_id: bytes, target: LegRef) -> None:
        """Bridge our client leg ``leg_id`` to ``target.leg_id`` on the node of
        ``target.domain`` (the caller's side; a leg of this domain is joined locally).
        On a refusal (see the module docstring) the client leg stays, unbridged."""
        domain = target.domain.lower()
        if domain == self.domain:
            self.core.join(leg_id, target.leg_id, self._now())
            return
        await self.bridge_at(domain, leg_id, target.leg_id)

    async def bridge_at(self, peer: LinkPeer, leg_id: bytes, far_leg: bytes) -> PeerLink:
        """Bridge our client leg ``leg_id`` to the client leg ``far_leg`` held by ``peer``
        (a peer domain, or another replica of this domain: ``node.calls.replicas``) over
        the link to it, opened now if there is none; the link. Refusals as :meth:`bridge`."""
        link = await self._link_to(peer)
        await self._await_join(link, link.bridges.request(leg_id, far_leg, self._now()), peer)
        return link

    async def chain_at(self, peer: ReplicaPeer, near: PeerLink, join: LinkJoin) -> PeerLink:
        """Carry a peer's ``join`` (on ``near``) of a leg the replica ``peer`` holds: the
        far half joined there, then the near half bridged to it and answered
        (``node.calls.replicas``); the link to ``peer``. Refusals as :meth:`bridge`."""
        far = await self._link_to(peer)
        half = far.bridges.request_half(join.leg_id, self._now())
        await self._await_join(far, half, peer)
        try:
            self._apply(near, near.bridges.accept_chain(join, far, half.channel, self._now()))
        except NodeError:
            self.service.report_ended(self.core.end_remote(far, half.channel))
            raise
        return far

    async def _await_join(self, link: PeerLink, join: LinkJoin, peer: LinkPeer) -> None:
        """Send ``join`` on ``link`` and wait for the answer; refusals as :meth:`bridge`."""
        domain = peer if isinstance(peer, str) else "the replica holding the leg"
        waiter = link.waiters[join.channel] = Waiter()
        try:
            link.send(join)
            with trio.move_on_after(self._join_timeout):
                await waiter.done.wait()
        finally:
            link.waiters.pop(join.channel, None)
            if not waiter.done.is_set():
                link.bridges.abandon(join.channel)
        if not waiter.done.is_set():
            raise NodeError(CALL_UNREACHABLE, f"{domain} did not answer the bridge in time")
        if waiter.code is not None:
            raise NodeError(waiter.code, f"{domain} did not join the call leg")

    async def room_link(self, peer: LinkPeer) -> PeerLink:
        """The open link to ``peer`` for a meeting room held there, opened now if there is
        none (refusals as :meth:`bridge`'s): a peer domain where the room is anchored, or
        the replica of this domain that holds the room (``ReplicaPeer``)."""
        if isinstance(peer, ReplicaPeer):
            return await self._link_to(peer)
        domain = peer.lower()
        if domain == self.domain:
            raise NodeError(CALL_UNREACHABLE, "a meeting room of this node needs no link")
        return await self._link_to(domain)

    def legs_ended(self, ended: Sequence[Ended]) -> None:
        """Legs that ended in this node: tell the peers of their remote legs
        (``LinkEnd``), and answer ``bridge`` calls still waiting on them."""
        owners = {leg.owner for leg in ended if leg.remote}
        for link in {owner for owner in owners if isinstance(owner, PeerLink)}:
            self._apply(link, link.bridges.ended(ended))

    # --- inbound ------------------------------------------------------------------------

    async def serve_inbound(self, channel: QuicChannel, first: bytes) -> None:
        """Authenticate the link a peer opened with ``first`` (its ``LinkHello``) and serve
        it until it closes; refuse it with ``LinkRejected`` otherwise."""
        try:
            domain = await accept_link(
                channel,
                first,
                domain=self.domain,
                pin=self.service.pin.sha256,
                fresh=self._random(CHALLENGE_SIZE),
                now_ms=self._now,
                documents=self._document,
                limit=self._handshake_timeout,
                replicas=self.accept_replicas,
            )
        except Refused as refusal:
            self.counters.count(self.counters.failures, "inbound_" + refusal.code)
            log.warning("media link refused", extra={"code": refusal.code})
            await send_quietly(channel, LinkRejected(refusal.code, refusal.message))
            channel.close(CLOSE_LINK_REJECTED, refusal.code)
            return
        kind = REPLICA_KIND if domain == self.domain else DOMAIN_KIND
        link = PeerLink(self.core, domain, channel, outbound=False, kind=kind)
        self._up(link)
        await self._serve(link)

    # --- outbound -----------------------------------------------------------------------

    def _open_link(self, key: str | bytes) -> PeerLink | None:
        link = self._links.get(key)
        return None if link is None or link.bridges.closed else link

    async def _link_to(self, peer: LinkPeer) -> PeerLink:
        """The open link to ``peer``, opened now if there is none."""
        key = peer.replica if isinstance(peer, ReplicaPeer) else peer
        link = self._open_link(key)
        if link is not None:
            return link
        async with self._locks.setdefault(key, trio.Lock()):
            link = self._open_link(key)
            if link is not None:
                return link
            try:
                if isinstance(peer, ReplicaPeer):
                    link = await self._dial_replica(peer)
                else:
                    link = await self._dial(peer)
            except NodeError as exc:
                self.counters.count(self.counters.failures, "outbound_" + exc.code)
                log.warning("media link failed", extra={"domain": str(peer), "code": exc.code})
                raise
            self._up(link)
            self._spawn().start_soon(self._serve, link)
            return link

    async def _dial(self, domain: str) -> PeerLink:
        """Connect to ``domain``'s media endpoint and prove who we are. A certificate key
        other than the document's pin means the peer rotated its QUIC key since we fetched
        the document (``trust.media``): fetch it again, once, and retry."""
        try:
            return await self._dial_endpoint(domain, await self._document(domain))
        except PeerKeyMismatch:
            refreshed = await self._document(domain, refresh=True)
        try:
            return await self._dial_endpoint(domain, refreshed)
        except PeerKeyMismatch:
            raise NodeError(CALL_UNREACHABLE, f"{domain}'s QUIC key is not its pin") from None

    async def _dial_replica(self, peer: ReplicaPeer) -> PeerLink:
        """Connect to another replica of this domain at its announced internal address:
        TLS pinned to this domain's own QUIC key (every replica has it), the proof by this
        domain's own server key (checked against its own document on the other side)."""
        endpoint = media_endpoint((await self._document(self.domain)).doc)
        if endpoint is None:
            raise NodeError(CALL_UNREACHABLE, "this domain lists no QUIC endpoint")
        pin = PinnedKey.from_sha256(endpoint.pin)
        try:
            channel = await _connect_quic(
                self._socket_nursery(), peer.address, peer.port, pin=pin, settings=self._settings
            )
        except PeerKeyMismatch:
            raise NodeError(CALL_UNREACHABLE, "a replica presented another QUIC key") from None
        except (TransportError, OSError):
            raise NodeError(CALL_UNREACHABLE, "the replica did not answer") from None
        await self._prove(channel, self.domain, endpoint.pin)
        return PeerLink(
            self.core, self.domain, channel, True, replica=peer.replica, kind=REPLICA_KIND
        )

    async def _prove(self, channel: QuicChannel, target: str, pin: bytes) -> None:
        """Prove this node to the accepter of ``channel``; close it on any failure."""
        try:
            await prove_link(
                channel,
                origin=self.domain,
                target=target,
                target_pin=pin,
                signer=self._signer(),
                limit=self._handshake_timeout,
            )
        except BaseException:  # refused, or the bridge was cancelled: no half-open link
            channel.close(CLOSE_LINK_DONE, "link not set up")
            raise

    async def _dial_endpoint(self, domain: str, verified: VerifiedDocument) -> PeerLink:
        """A proved link to the endpoint ``verified`` lists, on the first host that
        answers; :class:`PeerKeyMismatch` as soon as one presents another key."""
        endpoint = media_endpoint(verified.doc)
        if endpoint is None:
            raise NodeError(CALL_UNREACHABLE, f"{domain} lists no QUIC endpoint for calls")
        pin = PinnedKey.from_sha256(endpoint.pin)
        for host in self._hosts(domain):
            try:
                channel = await _connect_quic(
                    self._socket_nursery(), host, endpoint.port, pin=pin, settings=self._settings
                )
            except PeerKeyMismatch:
                raise
            except (TransportError, OSError):
                continue
            await self._prove(channel, domain, endpoint.pin)
            return PeerLink(self.core, domain, channel, outbound=True)
        raise NodeError(CALL_UNREACHABLE, f"no media endpoint of {domain} answered")

    def _hosts(self, domain: str) -> list[str]:
        """The hosts of ``domain``'s federation endpoints, in the configured order."""
        hosts = [urlsplit(url).hostname for url in self._keyring.policy(domain).urls()]
        return list(dict.fromkeys(host for host in hosts if host))

    async def _document(self, domain: str, *, refresh: bool = False) -> VerifiedDocument:
        """``domain``'s key document, verified and trusted; federation failures as
        :class:`NodeError` with their codes."""
        try:
            return await self._keyring.document(domain, refresh=refresh)
        except PolicyRefused as exc:
            raise NodeError(FED_POLICY, exc.message) from None
        except KeyDocumentError as exc:
            raise NodeError(exc.code, exc.message) from None
        except FederationError as exc:
            raise NodeError(FED_UNAVAILABLE, exc.message) from None

    def _spawn(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("MediaLinks.run is not running")
        return self._nursery

    def _socket_nursery(self) -> trio.Nursery:
        if self._sockets is None:
            raise RuntimeError("MediaLinks.run is not running")
        return self._sockets

    # --- a link's life ------------------------------------------------------------------

    def _up(self, link: PeerLink) -> None:
        link.bridges.carries = self.carry is not None and link.kind == DOMAIN_KIND
        if link.key is not None:
            self._links[link.key] = link
        self._open.add(link)
        self.service.attach(link, link.channel)
        direction = "outbound" if link.outbound else "inbound"
        self.counters.count(self.counters.connects, direction)
        extra = {"domain": link.domain, "direction": direction, "kind": link.kind}
        log.info("media link up", extra=extra)

    async def _serve(self, link: PeerLink) -> None:
        """Carry the link's bridge messages and datagrams until it closes; then end it."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, link)
                nursery.start_soon(self._forward, link)
                if self.relays is not None:
                    nursery.start_soon(self.relays.tend, link)
                await self._read(link)
                nursery.cancel_scope.cancel()
        finally:
            self._down(link)

    async def _read(self, link: PeerLink) -> None:
        while True:
            try:
                data = await link.channel.receive_control()
            except TransportError:
                return
            try:
                message = decode_link_traffic(data)
            except WireError:
                link.channel.close(CLOSE_LINK_PROTOCOL, "malformed link message")
                return
            if isinstance(message, BRIDGE_MESSAGES):
                self._apply(link, link.bridges.receive(message, self._now()))
            elif isinstance(message, RELAY_MESSAGES):
                if self.relays is not None:
                    self.relays.receive_relay(link, message)
            elif self.meetings is not None:
                self.meetings.receive_link(link, message)

    async def _write(self, link: PeerLink) -> None:
        async for data in link.outbox:
            try:
                await link.channel.send_control(data)
            except TransportError:
                return

    async def _forward(self, link: PeerLink) -> None:
        while True:
            try:
                batch = await link.channel.receive_datagram_batch(FORWARD_BATCH)
            except TransportError:
                return
            if self.relays is not None:
                batch = await self.relays.forward_relayed(link, batch)
            if self.meetings is not None and batch:
                batch = await self.meetings.forward_link(link, batch)
            if batch:
                await self.service.forward(link, batch)

    def _down(self, link: PeerLink) -> None:
        """The link closed: end its bridges, wake its waiting ``bridge`` calls."""
        if link.key is not None and self._links.get(link.key) is link:
            del self._links[link.key]
        self._open.discard(link)
        self.service.detach(link)
        link.close_outbox()
        link.channel.close(CLOSE_LINK_DONE, "link closed")
        self._apply(link, link.bridges.close())
        if self.meetings is not None:
            self.meetings.link_down(link)
        if self.relays is not None:
            self.relays.relays_down(link)
        log.info("media link down", extra={"domain": link.domain})

    def _apply(self, link: PeerLink, step: Step) -> None:
        """Carry out what :class:`LinkBridges` decided."""
        for message in step.replies:
            link.send(message)
        for answer in step.answers:
            waiter = link.waiters.get(answer.channel)
            if waiter is not None:
                waiter.code = answer.code
                waiter.done.set()
        if step.ended:
            self.service.report_ended(step.ended)
        if step.carried and self.carry is not None:
            for join in step.carried:
                self._spawn().start_soon(self.carry, link, join)
