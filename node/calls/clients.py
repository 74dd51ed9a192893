"""The client side of the node's call relay: the leg requests of ``/v1/client``
(``wire.relay_calls``; DESIGN section 9; issue 17, the rendezvous) and the WebSocket
fallback, around :class:`~node.calls.shell.CallService` and its core.

    legs = ClientLegs(service, store.call_legs, domain="a.example", replica=..., now_ms=...)
    await nursery.start(legs.run)          # ended legs -> store and owners; renewals

    allocate(owner, shell)         -> Leg      LegAllocate (the callee's side)
    bridge_to(owner, shell, ref)   -> Leg      LegBridge: a local join when ``ref.domain``
                                               is this node's, else ``legs.bridge(leg_id,
                                               ref)`` (the node-to-node media link's hook;
                                               until one is set: ``call.unreachable``); the
                                               new leg is ended if the bridge fails. In
                                               cluster mode a leg of this domain that this
                                               replica does not hold goes to
                                               ``legs.elsewhere(leg_id, far_leg)``
                                               (``node.calls.replicas``)
    hang_up(owner, shell, leg_id)              LegHangUp
    attach(owner, shell, leg_id, secret) -> Bound   LegAttach: the WebSocket becomes the
                                               leg's media connection
    forward(shell, batch)                      media datagrams read on that WebSocket
    online(owner, shell)                       an account logged in: its pushes go there
    end_elsewhere(ended)                       legs a node-to-node link ended
    gone(shell)                                the WebSocket closed: unbind its legs

``owner`` is the account's mailbox id (random, 16 bytes): it names no address, so the
core, the logs and the ``CallLegs`` port hold none. ``shell`` is the client's WebSocket
(:class:`~node.calls.wsmedia.ClientShell`): the last one of an owner that made a leg
request, or that logged in while the owner holds legs (a reconnection), is where
:class:`~wire.relay_calls.LegEnded` is pushed when one of its legs ends for any reason but
its own hang-up (the hang-up is answered ``Ok``).

Storage: each leg is mirrored into the ``CallLegs`` port (added at allocation with the
SHA-256 of its secret, renewed every :data:`RENEW_INTERVAL` seconds while it lives, deleted
when it ends), so operators and other replicas see it; the live state stays in the core.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from types import MappingProxyType
from typing import Final

import trio

from node.calls.core import CallRelay
from node.calls.events import Ended, EndReason
from node.calls.legs import ALLOCATION_TIMEOUT_MS, Bound, Leg, secret_hash
from node.calls.shell import CallService
from node.calls.wsmedia import ClientShell, WebSocketSink
from node.errors import (
    CALL_EXPIRED,
    CALL_HANG_UP,
    CALL_OWNER_GONE,
    CALL_PEER_ENDED,
    CALL_UNREACHABLE,
    NodeError,
)
from node.sfu.shell import MeetingService
from node.store.base import LegRecord
from node.store.ports import CallLegs
from wire.calls import LegRef
from wire.relay_calls import LegEnded

log = logging.getLogger("sealrelay.node.calls")

REPLICA_ID_BYTES: Final = 16
"""Bytes of the random id a node process names itself by in the ``CallLegs`` port."""
RENEW_INTERVAL: Final = ALLOCATION_TIMEOUT_MS / 1000 / 3
"""Seconds between two renewals of the stored legs (a third of their stored lifetime)."""
END_CODES: Final = MappingProxyType(
    {
        EndReason.HANG_UP: CALL_HANG_UP,
        EndReason.PEER_ENDED: CALL_PEER_ENDED,
        EndReason.EXPIRED: CALL_EXPIRED,
        EndReason.OWNER_GONE: CALL_OWNER_GONE,
    }
)
"""The ``LegEnded.reason`` of each way a leg ends (``trust.errors.LEG_END_REASONS``)."""

Owner = bytes
RemoteBridge = Callable[[bytes, LegRef], Awaitable[None]]
"""``bridge(leg_id, target)``: bridge this node's client leg ``leg_id`` to ``target``, a
leg of another domain's node, over the node-to-node media link; raises ``NodeError``
(``call.*``, ``fed.*``) if it cannot."""
ReplicaBridge = Callable[[bytes, bytes], Awaitable[None]]
"""``elsewhere(leg_id, far_leg)``: bridge this replica's client leg ``leg_id`` to
``far_leg``, a leg of this domain held by another replica (cluster mode); raises
``NodeError`` (``call.*``) if it cannot."""


async def no_links(leg_id: bytes, target: LegRef) -> None:
    """The remote bridge while the node has no node-to-node media links."""
    raise NodeError(CALL_UNREACHABLE, f"no media link to {target.domain}")


def _ignore(_: Ended) -> None:
    """The default ``remote_ended``."""


async def _unmirrored(_: Leg) -> None:
    """The default ``mirror_meeting``: meeting legs stay out of the store."""


class ClientLegs:
    """The leg requests of the node's clients and their WebSocket media (module doc)."""

    def __init__(
        self,
        service: CallService,
        store: CallLegs,
        *,
        domain: str,
        replica: bytes,
        now_ms: Callable[[], int],
        bridge: RemoteBridge = no_links,
        renew_interval: float = RENEW_INTERVAL,
    ) -> None:
        self.service = service
        self.core: CallRelay = service.core
        self.bridge: RemoteBridge = bridge
        """The remote bridge hook (``node.calls.links.MediaLinks.bridge`` once links exist)."""
        self.elsewhere: ReplicaBridge | None = None
        """Cluster mode: the bridge to a leg of this domain held by another replica
        (``node.calls.replicas.ReplicaCalls.bridge``); None: every such leg is local."""
        self.remote_ended: Callable[[Ended], object] = _ignore
        """Told of every ended *remote* leg (a node-to-node link's), for its link."""
        self.meetings: MeetingService | None = None
        """The meeting rooms (``node.sfu.shell``): meeting legs' ``LegAttach`` and their
        WebSocket media go there."""
        self.mirror_meeting: Callable[[Leg], Awaitable[None]] = _unmirrored
        """Told of each meeting leg granted here (cluster mode: ``node.calls.meetlegs``)."""
        self._store = store
        self._domain = domain.lower()
        self._replica = replica
        self._now = now_ms
        self._renew_interval = renew_interval
        self._owners: dict[Hashable, ClientShell] = {}
        self._shell_owner: dict[ClientShell, Owner] = {}
        self._mirrored: set[bytes] = set()
        self._legs_of: dict[Hashable, set[bytes]] = {}
        """Owner -> its client legs that have not ended."""
        self._sinks: dict[ClientShell, WebSocketSink] = {}
        self._nursery: trio.Nursery | None = None
        self._ended_in, self._ended_out = trio.open_memory_channel[Ended](math.inf)
        service.on_ended = self.ended

    # --- requests --------------------------------------------------------------------------

    async def allocate(self, owner: Owner, shell: ClientShell) -> Leg:
        """A new client leg for ``owner``, mirrored into the store."""
        leg = self.core.allocate(owner, self._now())
        record = LegRecord(leg.leg_id, self._replica, secret_hash(leg.leg_secret), leg.expires)
        try:
            await self._store.add_leg(record)
        except BaseException:
            self.core.hang_up(owner, leg.leg_id)  # never handed out
            raise
        self._watch(owner, shell)
        self._legs_of.setdefault(owner, set()).add(leg.leg_id)
        self._mirrored.add(leg.leg_id)
        return leg

    async def bridge_to(self, owner: Owner, shell: ClientShell, target: LegRef) -> Leg:
        """A new client leg for ``owner`` joined to ``target`` (see the module docstring)."""
        leg = await self.allocate(owner, shell)
        try:
            if target.domain.lower() != self._domain:
                await self.bridge(leg.leg_id, target)
            elif self.elsewhere is None or self.core.leg_counters(target.leg_id) is not None:
                self.core.join(leg.leg_id, target.leg_id, self._now())
            else:
                await self.elsewhere(leg.leg_id, target.leg_id)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._discard(owner, leg.leg_id)
            raise
        return leg

    async def hang_up(self, owner: Owner, shell: ClientShell, leg_id: bytes) -> None:
        """``owner`` ends its leg ``leg_id`` and the leg bridged to it (``call.no_leg``)."""
        self._watch(owner, shell)
        ended = self.core.hang_up(owner, leg_id)
        self.service.close_ended(ended)
        await self._settle(ended, quiet=leg_id)

    def attach(self, owner: Owner, shell: ClientShell, leg_id: bytes, secret: bytes) -> Bound:
        """Bind the WebSocket ``shell`` as the media connection of ``leg_id``
        (``call.no_leg``, ``call.expired``, ``call.bad_secret`` as a QUIC bind)."""
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("ClientLegs.run is not running")
        meetings = self.meetings
        if meetings is not None and meetings.owns(leg_id):
            bound = meetings.bind_websocket(shell, leg_id, secret, self._sink(shell, nursery))
        else:
            bound = self.core.bind(shell, leg_id, secret, self._now())
            self._sink(shell, nursery)
        self._watch(owner, shell)
        return bound

    def _sink(self, shell: ClientShell, nursery: trio.Nursery) -> WebSocketSink:
        """The writer of ``shell``'s media datagrams (one per attached WebSocket)."""
        sink = self._sinks.get(shell)
        if sink is None:
            sink = self._sinks[shell] = WebSocketSink(shell, self.service.counters)
            nursery.start_soon(sink.run)
            self.service.attach(shell, sink)
        return sink

    async def forward(self, shell: ClientShell, batch: Sequence[bytes]) -> None:
        """Media datagrams read together on ``shell``: forwarded, or dropped and counted
        by the core (malformed, no leg bound, another stream's sender id...); those of a
        WebSocket carrying a meeting leg go to the meeting's core."""
        if self.meetings is not None and self.meetings.carries(shell):
            await self.meetings.forward(shell, batch)
        else:
            await self.service.forward(shell, batch)

    def online(self, owner: Owner, shell: ClientShell) -> None:
        """``owner`` logged in on ``shell``: if it holds legs (it reconnected during a
        call), their ``LegEnded`` pushes go there from now on."""
        if owner in self._legs_of:
            self._watch(owner, shell)

    def gone(self, shell: ClientShell) -> None:
        """The WebSocket ``shell`` closed: its legs wait for a rebind (QUIC or another
        WebSocket) until the allocation timeout; nothing is pushed to it any more."""
        self.core.unbind(shell, self._now())
        if self.meetings is not None:
            self.meetings.gone(shell)
        self.service.detach(shell)
        sink = self._sinks.pop(shell, None)
        if sink is not None:
            sink.close()
        owner = self._shell_owner.pop(shell, None)
        if owner is not None and self._owners.get(owner) is shell:
            del self._owners[owner]

    # --- ended legs -------------------------------------------------------------------------

    def ended(self, leg: Ended) -> None:
        """``CallService.on_ended``: a leg the sweep ended (settled by :meth:`run`)."""
        self._ended_in.send_nowait(leg)

    def end_elsewhere(self, ended: Iterable[Ended]) -> None:
        """Legs the core ended outside a request or the sweep (a node-to-node link's
        ``end_remote`` or ``drop_owner``): close their media connections, then settle them
        as the sweep's (owners told, the store updated, remote legs to ``remote_ended``)."""
        legs = list(ended)
        self.service.close_ended(legs)
        for leg in legs:
            self.ended(leg)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Settle the legs the sweep ends and renew the stored ones, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._renew_loop)
            task_status.started()
            async for leg in self._ended_out:
                await self._settle((leg,))

    async def _discard(self, owner: Owner, leg_id: bytes) -> None:
        """End a leg whose bridge failed; its owner was answered with the failure."""
        try:
            ended = self.core.hang_up(owner, leg_id)
        except NodeError:  # ended meanwhile
            return
        self.service.close_ended(ended)
        await self._settle(ended, quiet=leg_id)

    async def _settle(self, ended: Iterable[Ended], *, quiet: bytes | None = None) -> None:
        """Forget each ended leg in the store and tell its owner (but of ``quiet``, the leg
        whose owner's own request ended it); remote legs go to ``remote_ended``."""
        for leg in ended:
            if leg.remote:
                self.remote_ended(leg)
                continue
            if leg.leg_id != quiet:
                self._tell_owner(leg)
            held = self._legs_of.get(leg.owner)
            if held is not None:
                held.discard(leg.leg_id)
                if not held:
                    del self._legs_of[leg.owner]
            if leg.leg_id in self._mirrored:
                self._mirrored.discard(leg.leg_id)
                await self._delete(leg.leg_id)

    def watch(self, owner: Owner, shell: ClientShell) -> None:
        """``owner`` made a meeting request on ``shell``: its pushes go there."""
        self._watch(owner, shell)

    def meeting_ended(self, owner: Hashable, leg_id: bytes) -> None:
        """``MeetingService.on_ended``: a meeting leg expired; tell its owner."""
        shell = self._owners.get(owner)
        if shell is not None and not shell.closed:
            shell.push(LegEnded(leg_id, CALL_EXPIRED))

    def _tell_owner(self, leg: Ended) -> None:
        shell = self._owners.get(leg.owner)
        if shell is not None and not shell.closed:
            shell.push(LegEnded(leg.leg_id, END_CODES[leg.reason]))

    async def _delete(self, leg_id: bytes) -> None:
        try:
            await self._store.delete_leg(leg_id)
        except Exception as exc:  # the sweeper removes it once it expires
            log.warning("call leg not deleted", extra={"error": type(exc).__name__})

    async def _renew_loop(self) -> None:
        while True:
            await trio.sleep(self._renew_interval)
            now = self._now()
            for leg_id in list(self._mirrored):
                if self.core.leg_counters(leg_id) is None:
                    continue
                try:
                    await self._store.renew_leg(
                        leg_id, self._replica, now + ALLOCATION_TIMEOUT_MS, now
                    )
                except Exception as exc:  # tried again next round
                    log.warning("call leg not renewed", extra={"error": type(exc).__name__})
                    break

    def _watch(self, owner: Owner, shell: ClientShell) -> None:
        """``shell`` is where ``owner``'s ``LegEnded`` pushes go from now on."""
        self._owners[owner] = shell
        self._shell_owner[shell] = owner
