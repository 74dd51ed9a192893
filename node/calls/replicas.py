"""1:1 calls across the replicas of one domain (DESIGN section 9; issue 18, item 4;
docs/kubernetes.md "The leg's replica"): the caller's replica bridges its client leg to a
callee's leg that another replica holds, over a replica media link.

    calls = ReplicaCalls(links, store.call_legs, store.media_placement, replica_id, now_ms=...)
    await nursery.start(calls.run)              # the watch over the replicas bridged to
    legs.elsewhere = calls.bridge               # node.calls.clients: LegBridge, same domain
    media_links.carry = calls.carry             # a peer domain's LinkJoin of such a leg

In cluster mode (the Redis store) a ``LegBridge`` names a leg of this domain that the
serving replica may not hold: the callee's WebSocket went to another replica, which
allocated the leg there. :meth:`ReplicaCalls.bridge` then

1. claims the leg in the ``CallLegs`` port (``claim_leg``, atomic): unknown or expired is
   ``call.no_leg``, claimed by a bridge already ``call.leg_taken``, and a record naming
   this replica (which does not hold it: it ended here) ``call.no_leg``. The claim makes a
   second bridge from any replica fail without dialling; the holder's relay core remains
   the last word (it joins a leg to one bridge only);
2. finds the holder's announced media address in the ``MediaPlacement`` port
   (:func:`replica_peer`; none: ``call.unreachable``);
3. sends the holder a ``LinkJoin`` over the replica link (``MediaLinks.bridge_at``), the
   cross-domain bridge as it is: the holder answers it as it answers a peer domain's
   (``LinkJoined``, or ``LinkJoinRefused`` with ``call.no_leg``, ``call.leg_taken`` or
   ``call.expired``), and hang-ups cross it as ``LinkEnd`` both ways.

A peer domain's link may land on a replica that does not hold the leg its ``LinkJoin``
names (the UDP load balancer chose it). :meth:`ReplicaCalls.carry` (``MediaLinks.carry``)
then makes this replica the middle of a chain: it claims the leg as above (so a leg still
takes one bridge, whichever replica the peer reached; a leg ``CallLegs`` does not record
at another replica is ``call.no_leg``, as before), joins it at its holder over the replica
link (the far half: ``CallRelay.open_remote``) and, once joined, bridges the peer's remote
leg to that one (the near half: ``CallRelay.chain_remote``) and answers ``LinkJoined``.
Media cross one more hop (the sender id rewritten at each); ends cross both links as
``LinkEnd``. A refusal reaches the peer as one of the codes its holder would give
(:func:`peer_code`). The relay's rule stands: a peer's link reaches client legs of this
domain only, never a third domain, and it is carried only for a leg ``CallLegs`` records.

A bridge carries no secret: the leg secrets stay with the holders, which compare their
hashes in constant time on each bind as before. A claim this replica made is given back
(``release_leg``, compare-and-release) when the bridge or the chain fails after it: the
holder unreachable or not announced, the ``LinkJoin`` refused or unanswered, a record
naming this replica, or the request cancelled (the release is shielded, at most
:data:`RELEASE_TIMEOUT` seconds). A later ``LegBridge`` to the callee's leg can then
succeed. A claim refused (``claimed`` already) is another bridge's and stays; so does one
whose answer the store lost (a failover: the leg can then only be hung up), and a release
the store fails is logged (the leg stays claimed until it ends or expires).

A replica that dies without closing its links (a crash, SIGKILL) is noticed by
:meth:`ReplicaCalls.run`: every :data:`WATCH_INTERVAL` seconds it looks up the media
address of each replica it bridged calls to, and closes the link to one whose address has
gone (withdrawn at shutdown, or expired ``node.sfu.placement.MEDIA_TTL_MS`` after its last
renewal). The link's bridges end, and each caller is told ``LegEnded{call.peer_ended}``.
The replica links' keep-alive (``node.calls.relayed``, 10 s of silence) usually closes
such a link first; the watch also covers a replica that still answers on its link but has
withdrawn its address. Store failures of the watch are logged and tried again next round
(a link is never closed for them).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final, Protocol

import trio

from node.calls.peering import REFUSAL_CODES, LinkPeer, ReplicaPeer
from node.calls.peerlink import PeerLink
from node.errors import CALL_LEG_TAKEN, CALL_NO_LEG, CALL_UNREACHABLE, NodeError
from node.store import StoreError
from node.store.base import LegRecord
from node.store.ports import CallLegs, MediaPlacement
from wire.media_link import CLOSE_LINK_DONE, LinkJoin, LinkJoinRefused

log = logging.getLogger("sealrelay.node.calls.replicas")

WATCH_INTERVAL: Final = 2.5
"""Seconds between two checks of the replicas this one bridged calls to."""
MAX_CARRYING: Final = 32
"""A peer link's joins being carried at once (each costs a store lookup and a join at
the holder); more are refused ``call.no_leg`` at once, so a peer naming leg ids in bulk
cannot keep the store busy."""
RELEASE_TIMEOUT: Final = 2.0
"""Seconds a failed bridge waits for the store to give its claim back (shielded from the
cancellation that may have failed it)."""


def peer_code(code: str) -> str:
    """The code a peer domain is refused a carried join with (pure): one of those it
    would get from the leg's holder itself (``REFUSAL_CODES``); the others (the store, the
    holder unreachable) as ``call.no_leg``, which is what such a join got before."""
    return code if code in REFUSAL_CODES else CALL_NO_LEG


def holder_of(record: LegRecord | None, here: bytes) -> bytes:
    """The replica to bridge to, from what ``claim_leg`` returned for the callee's leg
    (pure). :class:`NodeError` ``call.no_leg`` (unknown, expired, or recorded as this
    replica's, which does not hold it) or ``call.leg_taken`` (a bridge claimed it first)."""
    if record is None:
        raise NodeError(CALL_NO_LEG, "no such call leg")
    if record.claimed:
        raise NodeError(CALL_LEG_TAKEN, "the call leg is bridged already")
    if record.replica == here:
        raise NodeError(CALL_NO_LEG, "no such call leg")
    return record.replica


async def replica_peer(port: MediaPlacement, replica: bytes, now: int, what: str) -> ReplicaPeer:
    """Where ``replica`` announced its media listener, as a link's peer; ``call.unreachable``
    if it announced none (it has gone) or the store failed (``what``: what it holds, for
    the message)."""
    try:
        found = await port.media_address(replica, now)
    except StoreError as exc:
        raise NodeError(CALL_UNREACHABLE, f"media address lookup failed: {exc}") from None
    if found is None:
        raise NodeError(CALL_UNREACHABLE, f"the replica holding {what} is not announced")
    return ReplicaPeer(replica, found.address, found.port)


class Bridger(Protocol):
    """What bridges a client leg over a media link (``node.calls.links.MediaLinks``)."""

    async def bridge_at(self, peer: LinkPeer, leg_id: bytes, far_leg: bytes) -> PeerLink:
        """Bridge ``leg_id`` to ``far_leg`` held by ``peer``; the link used."""
        ...

    async def chain_at(self, peer: ReplicaPeer, near: PeerLink, join: LinkJoin) -> PeerLink:
        """Chain the peer's ``join`` on ``near`` to the leg ``peer`` holds; the link used."""
        ...


class ReplicaCalls:
    """Bridges of this replica's client legs to legs held by other replicas (module doc)."""

    def __init__(
        self,
        links: Bridger,
        legs: CallLegs,
        placement: MediaPlacement,
        replica: bytes,
        *,
        now_ms: Callable[[], int],
        interval: float = WATCH_INTERVAL,
    ) -> None:
        self._links, self._legs, self._placement = links, legs, placement
        self._replica, self._now, self._interval = replica, now_ms, interval
        self._watched: dict[bytes, PeerLink] = {}
        """Replica id -> the link this replica bridged calls to it over."""
        self.bridged = 0
        """Client legs bridged to a leg another replica holds (``LegBridge``)."""
        self.released = 0
        """Claims given back because the bridge or chain failed after them."""
        self.gone = 0
        """Links closed because their replica's media address had gone."""
        self.carried = 0
        """Peer domains' bridges chained through this replica to the leg's holder."""
        self._carrying: dict[PeerLink, int] = {}
        """Peer link -> its joins being carried now (at most :data:`MAX_CARRYING`)."""

    async def bridge(self, leg_id: bytes, far_leg: bytes) -> None:
        """Bridge our client leg ``leg_id`` to ``far_leg``, a leg of this domain held by
        another replica; refusals as the module docstring says."""
        async with self._claim(far_leg) as peer:
            self._watched[peer.replica] = await self._links.bridge_at(peer, leg_id, far_leg)
        self.bridged += 1

    async def carry(self, link: PeerLink, join: LinkJoin) -> None:
        """A peer domain's ``join`` on ``link`` names a leg this replica does not hold:
        claim it and chain the bridge through here to the replica holding it (module
        docstring), or answer ``LinkJoinRefused`` with :func:`peer_code`. Never raises
        (it runs beside the link's tasks)."""
        busy = self._carrying.get(link, 0)
        if busy >= MAX_CARRYING:
            link.send(LinkJoinRefused(join.channel, CALL_NO_LEG))
            return
        self._carrying[link] = busy + 1
        try:
            async with self._claim(join.leg_id) as peer:
                self._watched[peer.replica] = await self._links.chain_at(peer, link, join)
            self.carried += 1
        except NodeError as refusal:
            link.send(LinkJoinRefused(join.channel, peer_code(refusal.code)))
        except Exception:  # a bug here must not take the links down with it
            log.exception("carrying a peer's bridge failed")
            link.send(LinkJoinRefused(join.channel, CALL_NO_LEG))
        finally:
            self._carrying[link] -= 1
            if not self._carrying[link]:
                del self._carrying[link]

    @asynccontextmanager
    async def _claim(self, leg_id: bytes) -> AsyncIterator[ReplicaPeer]:
        """Claim the leg ``leg_id`` of another replica in ``CallLegs`` and give where its
        holder listens; if this call made the claim and anything fails after it (here or
        in the ``async with`` body), give it back. Refusals as the module docstring says."""
        try:
            record = await self._legs.claim_leg(leg_id, self._now())
        except StoreError as exc:
            raise NodeError(CALL_UNREACHABLE, f"call leg lookup failed: {exc}") from None
        ours = record is not None and not record.claimed
        try:
            holder = holder_of(record, self._replica)
            yield await replica_peer(self._placement, holder, self._now(), "the call leg")
        except BaseException:
            if ours:
                await self._release(leg_id)
            raise

    async def _release(self, leg_id: bytes) -> None:
        """Give back this replica's claim on ``leg_id`` (shielded, bounded); a store
        failure is logged, never raised over the bridge's own error."""
        with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT) as waited:
            try:
                released = await self._legs.release_leg(leg_id, self._now())
            except StoreError as exc:
                log.warning("call leg release failed", extra={"error": str(exc)})
                return
            self.released += int(released)
        if waited.cancelled_caught:
            log.warning("call leg release failed", extra={"error": "timed out"})

    async def check(self) -> None:
        """Close the link to each replica bridged to whose media address has gone; forget
        the links that closed or carry no bridge any more."""
        for replica, link in list(self._watched.items()):
            bridges = link.bridges
            if bridges.closed or not (bridges.joined or bridges.pending):
                del self._watched[replica]
                continue
            try:
                found = await self._placement.media_address(replica, self._now())
            except StoreError as exc:
                log.warning("replica lookup failed", extra={"error": str(exc)})
                return
            if found is None:
                del self._watched[replica]
                self.gone += 1
                log.warning("call link closed", extra={"code": "call.replica_gone"})
                link.channel.close(CLOSE_LINK_DONE, "replica gone")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """:meth:`check` every ``interval`` seconds until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self._interval)
            await self.check()
