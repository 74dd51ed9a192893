"""The node's call relay (DESIGN section 9; issue 17): legs, bridges and forwarding.

    CallRelay           the pure core (``core``): allocate and bind legs, bridge them
                        within the node or over a peer domain's link, and decide for each
                        media datagram where it goes (:class:`Forward`) or why not
                        (:class:`Drop`); time and randomness injected
    Leg, Bound          what a client is told: a new leg (id, secret), a bound connection's
                        sender id (``legs``)
    Forward, Drop,      the decisions, the legs that ended, and the counters behind the
    DropReason, Ended,  call metrics (``events``)
    RelayStats, ...

    CallService         the trio shell over QUIC (``shell``): binds each accepted QUIC
                        connection to its leg (``wire.media_control`` messages), forwards
                        datagrams through the core in batches, expires legs every second;
                        started by ``node.server`` when ``udp_listen`` is set

    MediaLinks          node-to-node media links (``links``): one authenticated QUIC link
                        per peer domain, and ``bridge`` for a ``LegBridge`` to another
                        domain's leg; its handshake (``linkauth``) and the pure bridges of
                        one link (``peering``); messages in ``wire.media_link``

    ClientLegs          the client side (``clients``): the leg requests of ``/v1/client``
                        (allocate, bridge, hang up, attach), ``LegEnded`` pushes, the
                        ``CallLegs`` mirror, and the WebSocket fallback (``wsmedia``)
                        through :meth:`CallService.attach` and :meth:`CallService.forward`;
                        a bridge to another domain goes through its ``bridge`` hook


The storage port that outlives a replica or is shared in cluster mode is
:class:`node.store.ports.CallLegs`. The WebSocket fallback and the node-to-node links feed
the same core through :meth:`CallService.attach` and :meth:`CallService.forward`. Nothing
here is part of ``Relay`` or of the message store.
"""

from __future__ import annotations

from node.calls.core import CallRelay
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
    Leg,
    secret_hash,
)

__all__ = [
    "ALLOCATION_TIMEOUT_MS",
    "IDLE_TIMEOUT_MS",
    "LEG_ID_BYTES",
    "LEG_SECRET_BYTES",
    "Bound",
    "CallRelay",
    "Drop",
    "DropReason",
    "EndReason",
    "Ended",
    "Forward",
    "Leg",
    "LegCounters",
    "RelayStats",
    "secret_hash",
]
