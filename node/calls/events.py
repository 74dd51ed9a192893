"""What :class:`node.calls.core.CallRelay` decides and reports: forward or drop a datagram,
the legs that ended, and the counters behind the call metrics (issue 17, "Operations")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from node.calls.legs import Conn, Owner


class DropReason(StrEnum):
    """Why a datagram was not forwarded; each is counted (``/metrics``: drops by reason)."""

    MALFORMED = "malformed"
    """The clear header does not decode (``wire.media.decode_datagram`` refused it)."""
    NO_LEG = "no_leg"
    """The connection it came on has no leg bound."""
    STREAM_NOT_BOUND = "stream_not_bound"
    """Its stream's sender id is not the one bound to the connection it came on: another
    connection's stream, or a forged one."""
    EXPIRED = "expired"
    """Its leg expired (idle too long) and waits for the sweep."""
    NO_PEER = "no_peer"
    """Its leg is not bridged yet (or the peer node has not answered the bridge)."""
    PEER_NOT_BOUND = "peer_not_bound"
    """The bridged leg has no media connection right now (not yet bound, or reconnecting)."""


class EndReason(StrEnum):
    """Why a leg ended."""

    HANG_UP = "hang_up"
    """Its owner hung up (or the peer node ended a remote leg)."""
    EXPIRED = "expired"
    """Not bound within the allocation timeout, or idle past the idle timeout."""
    OWNER_GONE = "owner_gone"
    """Its owner went (an account's connection, a peer domain's link)."""
    PEER_ENDED = "peer_ended"
    """The leg it was bridged to ended: a call has two ends."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Send ``data`` on the media connection ``dest``."""

    dest: Conn
    data: bytes


@dataclass(frozen=True, slots=True)
class Drop:
    """Do not forward the datagram (already counted under ``reason``)."""

    reason: DropReason


@dataclass(frozen=True, slots=True)
class Ended:
    """A leg that ended: the shell tells its owner, deletes it from the ``CallLegs`` port
    and, for a remote leg, tells the peer node to end the bridge: ``channel`` is the id
    this node chose for it (what :meth:`~node.calls.core.CallRelay.bridge_remote` or
    ``accept_remote`` returned), ``far_channel`` the peer node's (None while the peer node
    has not joined)."""

    leg_id: bytes
    owner: Owner
    reason: EndReason
    remote: bool = False
    channel: int | None = None
    far_channel: int | None = None


@dataclass(frozen=True, slots=True)
class LegCounters:
    """One leg's traffic: datagrams and bytes received from its connection (``in``) and
    forwarded to it (``out``)."""

    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class RelayStats:
    """The gauges and counters for ``/metrics``: client and remote legs held, bridges
    joined, datagrams and bytes forwarded, and datagrams dropped by reason."""

    legs: int
    remote_legs: int
    bound_legs: int
    bridges: int
    forwarded: int
    forwarded_bytes: int
    drops: Mapping[DropReason, int]
