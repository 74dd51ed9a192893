"""A QUIC server on loopback UDP and clients connected to it, for the transport tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from transport import (
    DEFAULT_SETTINGS,
    MONOTONIC,
    QuicChannel,
    QuicClock,
    QuicIdentity,
    QuicServer,
    QuicSettings,
    connect_quic,
)

LOOPBACK = "127.0.0.1"
STEP_TIMEOUT = 3.0
"""Seconds any single step of a test may take (a handshake, a receive)."""


@dataclass
class Loopback:
    nursery: trio.Nursery
    identity: QuicIdentity
    server: QuicServer
    port: int

    async def connect(
        self, settings: QuicSettings = DEFAULT_SETTINGS, clock: QuicClock = MONOTONIC
    ) -> tuple[QuicChannel, QuicChannel]:
        """A new client of the server, and the server's side of the same connection."""
        with trio.fail_after(STEP_TIMEOUT):
            client = await connect_quic(
                self.nursery,
                LOOPBACK,
                self.port,
                pin=self.identity.pin,
                settings=settings,
                clock=clock,
            )
            return client, await self.server.accept()


@asynccontextmanager
async def loopback_server(
    settings: QuicSettings = DEFAULT_SETTINGS, clock: QuicClock = MONOTONIC
) -> AsyncIterator[Loopback]:
    """A QUIC server on a free loopback port; it and every client stop on exit."""
    identity = QuicIdentity.generate()
    server = QuicServer(identity, settings=settings, clock=clock)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve, LOOPBACK, 0)
        yield Loopback(nursery, identity, server, address[1])
        nursery.cancel_scope.cancel()
