"""What the call load generator's parts share (``benchmarks.callload``,
``benchmarks.callflood``): a caller/callee pair of clients, the barrier every call of a
command passes once bound, the JSON lines to the orchestrator; and the loopback QUIC
connection with no node that the relay-added latency is measured against (also
``benchmarks.callreplicas`` and ``benchmarks.meetload``)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

import trio

from client.app import Client
from transport import DEFAULT_SETTINGS, QuicChannel, QuicIdentity, QuicServer, connect_quic

STEP_TIMEOUT: Final = 60.0
"""Seconds a command may take beyond its media time."""
LOOPBACK: Final = "127.0.0.1"


async def loopback_quic(nursery: trio.Nursery) -> tuple[QuicChannel, QuicChannel]:
    """The two ends (the one that dialled, the one accepted) of a QUIC connection on
    loopback with no node in between, served in ``nursery``: the baseline path."""
    identity = QuicIdentity.generate()
    server = QuicServer(identity, settings=DEFAULT_SETTINGS)
    address = await nursery.start(server.serve, LOOPBACK, 0)
    dialled = await connect_quic(nursery, LOOPBACK, address[1], pin=identity.pin)
    return dialled, await server.accept()


@dataclass
class Pair:
    """Two enrolled clients, online, that call each other (each call: the caller bridges
    to the callee's leg)."""

    caller: Client
    callee: Client


class Barrier:
    """Every call of a command is bound before any plays: the last to arrive prints
    ``{"bound": N}`` (the orchestrator starts its CPU and profile window there)."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._arrived = 0
        self._all = trio.Event()
        self.cpu_s = 0.0

    async def arrive(self) -> None:
        self._arrived += 1
        if self._arrived == self._count:
            self.cpu_s = time.process_time()
            emit({"bound": self._count})
            self._all.set()
        await self._all.wait()


def emit(doc: dict[str, Any]) -> None:
    """One JSON line to the orchestrator (``benchmarks.calls``)."""
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()
