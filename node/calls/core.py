"""The node's call relay core: legs, bridges and the per-datagram forwarding decision
(DESIGN section 9; issue 17, "the media path"; the plan's rendezvous).

Pure: no trio, no store, no clock. Time (``now``, Unix ms) and randomness (``random(n)``
returning ``n`` bytes, e.g. ``secrets.token_bytes``) are injected. The trio shell (the UDP
listener, the WebSocket fallback, node-to-node links) feeds it and carries out its
decisions; the shell also mirrors allocations into the ``CallLegs`` storage port, which is
what other replicas see.

Rendezvous, with the calls this core offers::

    callee's node (B)                                  caller's node (A)
    allocate(callee_conn)  -> Leg(id, secret)
        the callee sends LegRef{B, id} inside the end-to-end answer
                                                       allocate(caller_conn) -> Leg
                                                       same domain:  join(caller leg, id)
                                                       other domain: bridge_remote(caller
                                                         leg, link, "b.example") -> a_ch
                         <--- Join{id, a_ch} on the link A-B ---
    accept_remote(id, link, "a.example", a_ch) -> b_ch
                         --- Joined{b_ch} --->         remote_joined(link, a_ch, b_ch)
    each client: bind(media conn, its leg id, its secret) -> Bound(sender)

A datagram's clear header (``wire.media``, never its payload) names its stream's sender.
A client leg's sender id is drawn when its connection first binds and kept across rebinds;
a remote leg's is the *channel* this node chose for the bridge on its link (``a_ch`` or
``b_ch`` above), so one link carries many calls. :meth:`CallRelay.on_datagram` finds the
leg by (connection, sender): a datagram whose sender is not bound to the connection it came
on is dropped (``stream_not_bound``). Datagrams to a remote leg leave with the sender id
the peer node chose (the four sender bytes are rewritten; the SFrame metadata leaves them
out, ``wire.media.frame_metadata``); datagrams to a client leg leave as they came.

Privacy (issue 17, "who sees what"): a remote leg holds the peer *domain* and its link,
never an account address (:meth:`CallRelay.accept_remote` refuses anything with an ``@``);
leg ids and sender ids are random draws, not derived from an account, a call or a
counter; the leg secret is kept only as SHA-256. The core never holds a media key.

Refusals raise :class:`node.errors.NodeError` with the codes ``call.no_leg``,
``call.leg_taken``, ``call.bad_secret`` and ``call.expired`` (``trust.errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from node.calls.events import (
    Drop,
    DropReason,
    Ended,
    EndReason,
    Forward,
    LegCounters,
    RelayStats,
)
from node.calls.legs import (
    ALLOCATION_TIMEOUT_MS,
    IDLE_TIMEOUT_MS,
    LEG_ID_BYTES,
    LEG_SECRET_BYTES,
    Bound,
    Conn,
    Leg,
    LegState,
    Owner,
    pack_sender,
    secret_hash,
    secret_matches,
)
from node.errors import CALL_BAD_SECRET, CALL_EXPIRED, CALL_LEG_TAKEN, CALL_NO_LEG, NodeError
from wire.media import peek_sender, replace_sender

_SENDER_BYTES: Final = 4
_MAX_SENDER: Final = 0xFFFF_FFFF
_DROPS: Final = {reason: Drop(reason) for reason in DropReason}


class CallRelay:
    """Legs, bridges and forwarding decisions of one node (or one replica)."""

    def __init__(
        self,
        random: Callable[[int], bytes],
        *,
        allocation_timeout_ms: int = ALLOCATION_TIMEOUT_MS,
        idle_timeout_ms: int = IDLE_TIMEOUT_MS,
    ) -> None:
        self._random = random
        self._allocation_timeout = allocation_timeout_ms
        self._idle_timeout = idle_timeout_ms
        self._legs: dict[bytes, LegState] = {}
        self._streams: dict[tuple[Conn, int], LegState] = {}
        self._conn_legs: dict[Conn, set[bytes]] = {}
        self._senders: set[int] = set()
        self._bridges = 0
        self._forwarded = 0
        self._forwarded_bytes = 0
        self._drops: dict[DropReason, int] = dict.fromkeys(DropReason, 0)

    # --- legs ----------------------------------------------------------------------------
    def allocate(self, owner: Owner, now: int) -> Leg:
        """A new client leg for ``owner`` (an account's connection); unbound, it expires
        after the allocation timeout. The secret is in the answer only."""
        leg_id = self._fresh_leg_id()
        secret = self._random(LEG_SECRET_BYTES)
        state = LegState(leg_id, owner, secret_hash(secret), now + self._allocation_timeout)
        self._legs[leg_id] = state
        return Leg(leg_id, secret, state.deadline)

    def bind(self, conn: Conn, leg_id: bytes, secret: bytes, now: int) -> Bound:
        """Bind the media connection ``conn`` to the client leg ``leg_id`` by its secret.

        One connection per leg: binding again (a reconnect, or the move from QUIC to the
        WebSocket fallback) replaces the old binding, and the leg keeps its sender id.
        ``call.no_leg``, ``call.expired`` or ``call.bad_secret`` otherwise.
        """
        leg = self._live(leg_id, now)
        if leg.remote:
            raise NodeError(CALL_NO_LEG, "no such call leg")
        if not secret_matches(leg.secret_hash, secret):
            raise NodeError(CALL_BAD_SECRET, "the leg secret does not match")
        if leg.conn is not None:
            self._detach(leg)
        sender = self._fresh_sender() if leg.sender is None else leg.sender
        self._attach(leg, conn, sender)
        leg.deadline = now + self._idle_timeout
        return Bound(leg_id, sender)

    def unbind(self, conn: Conn, now: int) -> list[bytes]:
        """The media connection ``conn`` went: its client legs wait (unbound) for a rebind
        until the allocation timeout; the ids of those legs."""
        gone = []
        for leg_id in sorted(self._conn_legs.get(conn, ())):
            leg = self._legs[leg_id]
            if not leg.remote:
                self._detach(leg)
                leg.deadline = now + self._allocation_timeout
                gone.append(leg_id)
        return gone

    # --- bridges -------------------------------------------------------------------------
    def join(self, leg_id: bytes, other_id: bytes, now: int) -> None:
        """Bridge two client legs of this node (a call within one domain).

        ``call.no_leg`` or ``call.expired`` if either is not live, ``call.leg_taken`` if
        either is bridged already (or they are the same leg)."""
        leg, other = self._live(leg_id, now), self._live(other_id, now)
        if leg is other or leg.peer is not None or other.peer is not None:
            raise NodeError(CALL_LEG_TAKEN, "the call leg is bridged already")
        self._pair(leg, other)

    def bridge_remote(self, leg_id: bytes, link: Conn, domain: str, now: int) -> int:
        """Bridge the client leg ``leg_id`` towards a leg of the peer domain ``domain``
        over ``link`` (the caller's side); the channel id the peer node must put in the
        datagrams it sends us for this bridge. Datagrams towards the peer wait (dropped as
        ``no_peer``) until :meth:`remote_joined`."""
        leg = self._live(leg_id, now)
        if leg.peer is not None:
            raise NodeError(CALL_LEG_TAKEN, "the call leg is bridged already")
        remote, channel = self._remote_leg(link, domain, now, out_prefix=b"")
        remote.pending = True
        self._pair(leg, remote)
        return channel

    def remote_joined(self, link: Conn, channel: int, far_channel: int) -> None:
        """The peer node joined the bridge that :meth:`bridge_remote` named ``channel``,
        and chose ``far_channel`` for the datagrams we send it. ``call.no_leg`` if that
        bridge is gone."""
        remote = self._streams.get((link, channel))
        if remote is None or not remote.remote:
            raise NodeError(CALL_NO_LEG, "no such call leg")
        remote.out_prefix = _channel_prefix(far_channel)
        remote.pending = False

    def unbridge_remote(self, link: Conn, channel: int) -> bool:
        """Undo :meth:`bridge_remote` for the bridge ``channel`` on ``link`` that the peer
        node has not joined (it refused, or did not answer in time): the remote leg goes,
        the client leg stays, live and unbridged, for its owner to hang up or bridge
        again. Whether there was such a pending bridge (a joined one is left alone: end it
        with :meth:`end_remote`)."""
        remote = self._streams.get((link, channel))
        if remote is None or not remote.remote or not remote.pending:
            return False
        peer, remote.peer = remote.peer, None
        if peer is not None:
            peer.peer = None
            self._bridges -= 1
        self._detach(remote)
        del self._legs[remote.leg_id]
        self._senders.discard(channel)
        return True

    def accept_remote(
        self, leg_id: bytes, link: Conn, domain: str, far_channel: int, now: int
    ) -> int:
        """The peer domain ``domain`` asks over ``link`` to join our client leg ``leg_id``
        (the callee's side) and sends ``far_channel`` for the datagrams we send it; the
        channel id it must put in the datagrams it sends us. Refused as :meth:`join`."""
        prefix = _channel_prefix(far_channel)
        leg = self._live(leg_id, now)
        if leg.remote or leg.peer is not None:
            raise NodeError(CALL_LEG_TAKEN, "the call leg is bridged already")
        remote, channel = self._remote_leg(link, domain, now, out_prefix=prefix)
        self._pair(leg, remote)
        return channel

    def open_remote(self, link: Conn, domain: str, now: int) -> int:
        """The far half of a chain (the middle replica of a peer domain's bridge to a leg
        another replica holds; ``node.calls.replicas``): a remote leg on ``link``, pending
        as :meth:`bridge_remote`'s, bridged to nothing yet; its channel. Undo it with
        :meth:`unbridge_remote`, or complete it with :meth:`chain_remote`."""
        remote, channel = self._remote_leg(link, domain, now, out_prefix=b"")
        remote.pending = True
        return channel

    def chain_remote(
        self, link: Conn, domain: str, far_channel: int, out: Conn, out_channel: int, now: int
    ) -> int:
        """The near half of a chain: a remote leg for the peer ``domain`` on ``link`` (it
        sends ``far_channel``), bridged to the joined, unbridged remote leg
        ``out_channel`` of ``out`` (:meth:`open_remote`); the channel the peer must put in
        its datagrams. ``call.no_leg`` if that far half is gone or not joined."""
        prefix = _channel_prefix(far_channel)
        half = self._streams.get((out, out_channel))
        if half is None or not half.remote or half.pending or half.peer is not None:
            raise NodeError(CALL_NO_LEG, "no such call leg")
        remote, channel = self._remote_leg(link, domain, now, out_prefix=prefix)
        self._pair(remote, half)
        return channel

    # --- ends ----------------------------------------------------------------------------
    def hang_up(self, owner: Owner, leg_id: bytes) -> list[Ended]:
        """``owner`` ends its leg ``leg_id`` (and the leg it is bridged to).
        ``call.no_leg`` if ``owner`` holds no such leg."""
        leg = self._legs.get(leg_id)
        if leg is None or leg.owner != owner:
            raise NodeError(CALL_NO_LEG, "no such call leg")
        return self._end(leg, EndReason.HANG_UP)

    def end_remote(self, link: Conn, channel: int) -> list[Ended]:
        """The peer node ended (or refused) the bridge we know as ``channel`` on ``link``:
        end that remote leg and the leg bridged to it; nothing if it is gone already."""
        remote = self._streams.get((link, channel))
        if remote is None or not remote.remote:
            return []
        return self._end(remote, EndReason.HANG_UP)

    def drop_owner(self, owner: Owner) -> list[Ended]:
        """``owner`` went (a peer domain's link closed; an account gone for good): end its
        legs and the legs bridged to them."""
        ended: list[Ended] = []
        for leg in [leg for leg in self._legs.values() if leg.owner == owner]:
            if leg.leg_id in self._legs:
                ended += self._end(leg, EndReason.OWNER_GONE)
        return ended

    def expire(self, now: int) -> list[Ended]:
        """End the legs past their deadline (unbound past the allocation timeout, bound and
        idle past the idle timeout), with the legs bridged to them. The shell calls it
        every second or so; it walks every leg."""
        ended: list[Ended] = []
        for leg in [leg for leg in self._legs.values() if leg.deadline <= now]:
            if leg.leg_id in self._legs:
                ended += self._end(leg, EndReason.EXPIRED)
        return ended

    # --- datagrams -----------------------------------------------------------------------
    def on_datagram(self, conn: Conn, data: bytes, now: int) -> Forward | Drop:
        """Where the media datagram ``data`` that arrived on ``conn`` goes, or why not.

        Reads only the clear header. Every datagram from a bound stream counts as activity
        of its leg (it pushes the idle deadline), forwarded or not. Never raises."""
        sender = peek_sender(data)  # a media datagram decode_datagram accepts (not a signature)
        if sender is None:
            return self._drop(DropReason.MALFORMED)
        leg = self._streams.get((conn, sender))
        if leg is None:
            if conn in self._conn_legs:
                return self._drop(DropReason.STREAM_NOT_BOUND)
            return self._drop(DropReason.NO_LEG)
        if now >= leg.deadline:
            return self._drop(DropReason.EXPIRED)
        size = len(data)
        leg.deadline = now + self._idle_timeout
        leg.packets_in += 1
        leg.bytes_in += size
        peer = leg.peer
        if peer is None or peer.pending:
            return self._drop(DropReason.NO_PEER)
        dest = peer.conn
        if dest is None:
            return self._drop(DropReason.PEER_NOT_BOUND)
        if peer.out_prefix:
            data = replace_sender(data, peer.out_prefix)  # bytes from any bytes-like
        peer.packets_out += 1
        peer.bytes_out += size
        self._forwarded += 1
        self._forwarded_bytes += size
        return Forward(dest, bytes(data))  # never the caller's (mutable) buffer

    # --- counters ------------------------------------------------------------------------
    def stats(self) -> RelayStats:
        """The relay's gauges and counters, now."""
        remote = sum(1 for leg in self._legs.values() if leg.remote)
        bound = sum(1 for leg in self._legs.values() if not leg.remote and leg.conn is not None)
        return RelayStats(
            legs=len(self._legs) - remote,
            remote_legs=remote,
            bound_legs=bound,
            bridges=self._bridges,
            forwarded=self._forwarded,
            forwarded_bytes=self._forwarded_bytes,
            drops=dict(self._drops),
        )

    def leg_counters(self, leg_id: bytes) -> LegCounters | None:
        """The traffic of leg ``leg_id``, or None if there is no such leg."""
        leg = self._legs.get(leg_id)
        if leg is None:
            return None
        return LegCounters(leg.packets_in, leg.bytes_in, leg.packets_out, leg.bytes_out)

    # --- internals -----------------------------------------------------------------------
    def _drop(self, reason: DropReason) -> Drop:
        self._drops[reason] += 1
        return _DROPS[reason]

    def _live(self, leg_id: bytes, now: int) -> LegState:
        leg = self._legs.get(leg_id)
        if leg is None:
            raise NodeError(CALL_NO_LEG, "no such call leg")
        if leg.deadline <= now:
            raise NodeError(CALL_EXPIRED, "the call leg expired")
        return leg

    def _fresh_leg_id(self) -> bytes:
        while True:
            leg_id = self._random(LEG_ID_BYTES)
            if leg_id not in self._legs:
                return leg_id

    def _fresh_sender(self) -> int:
        while True:
            sender = int.from_bytes(self._random(_SENDER_BYTES), "big")
            if sender not in self._senders:
                self._senders.add(sender)
                return sender

    def _remote_leg(
        self, link: Conn, domain: str, now: int, *, out_prefix: bytes
    ) -> tuple[LegState, int]:
        """A remote leg on ``link``, bound to it under a fresh channel id; (leg, channel)."""
        if not domain or "@" in domain:
            raise ValueError("a remote leg knows a peer domain, never an address")
        channel = self._fresh_sender()
        leg = LegState(
            self._fresh_leg_id(),
            owner=link,
            secret_hash=b"",
            deadline=now + self._allocation_timeout,
            remote=True,
            domain=domain,
            out_prefix=out_prefix,
        )
        self._legs[leg.leg_id] = leg
        self._attach(leg, link, channel)
        return leg, channel

    def _attach(self, leg: LegState, conn: Conn, sender: int) -> None:
        leg.conn, leg.sender = conn, sender
        self._streams[(conn, sender)] = leg
        self._conn_legs.setdefault(conn, set()).add(leg.leg_id)

    def _detach(self, leg: LegState) -> None:
        conn, leg.conn = leg.conn, None
        if conn is None or leg.sender is None:
            return
        self._streams.pop((conn, leg.sender), None)
        legs = self._conn_legs.get(conn)
        if legs is not None:
            legs.discard(leg.leg_id)
            if not legs:
                del self._conn_legs[conn]

    def _pair(self, leg: LegState, other: LegState) -> None:
        leg.peer, other.peer = other, leg
        self._bridges += 1

    def _end(self, leg: LegState, reason: EndReason) -> list[Ended]:
        """Remove ``leg``, then the leg bridged to it (a call has two ends)."""
        self._detach(leg)
        del self._legs[leg.leg_id]
        if leg.sender is not None:
            self._senders.discard(leg.sender)
        far = int.from_bytes(leg.out_prefix, "big") if leg.out_prefix else None
        channel = leg.sender if leg.remote else None
        ended = [Ended(leg.leg_id, leg.owner, reason, leg.remote, channel, far)]
        peer, leg.peer = leg.peer, None
        if peer is not None:
            peer.peer = None
            self._bridges -= 1
            ended += self._end(peer, EndReason.PEER_ENDED)
        return ended


def _channel_prefix(channel: int) -> bytes:
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel <= _MAX_SENDER:
        raise ValueError("a channel id is a 32-bit sender id")
    return pack_sender(channel)
