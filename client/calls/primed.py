"""Waiting for the peer's first datagram before sending (issue 17): the callee's side.

The callee binds its leg as soon as its node allocated it, before the caller's node has
bridged to it and before the caller has bound its own leg; media the callee sent in that
gap would reach nobody and count as lost at the caller. So the callee first waits (at most
:data:`FIRST_DATAGRAM_WAIT` seconds) for the caller's first datagram, which proves the path
is up, then plays its media over :class:`Primed`: the same transport with the datagrams
already read put back in front, so the media runner sees every one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Final

import trio

from transport.base import DATAGRAM_BATCH, MediaTransport, TransportKind, TransportStats
from transport.errors import TransportClosed

FIRST_DATAGRAM_WAIT: Final = 5.0
"""Seconds the callee waits for the caller's first datagram before it sends anyway."""


class Primed:
    """``inner`` (a ``MediaTransport``) with ``first`` received already, in front."""

    def __init__(self, inner: MediaTransport, first: list[bytes]) -> None:
        self._inner, self._first = inner, list(first)

    @property
    def kind(self) -> TransportKind:
        return self._inner.kind

    async def send_datagram(self, payload: bytes) -> None:
        await self._inner.send_datagram(payload)

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        await self._inner.send_datagrams(payloads)

    async def receive_datagram(self) -> bytes:
        if self._first:
            return self._first.pop(0)
        return await self._inner.receive_datagram()

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        if self._first:
            batch, self._first = self._first[:limit], self._first[limit:]
            return batch
        return await self._inner.receive_datagram_batch(limit)

    async def datagrams(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.receive_datagram()
            except TransportClosed:
                return

    async def send_control(self, message: bytes) -> None:
        await self._inner.send_control(message)

    async def receive_control(self) -> bytes:
        return await self._inner.receive_control()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def stats(self) -> TransportStats:
        return self._inner.stats()


async def after_first_datagram(
    transport: MediaTransport, wait: float = FIRST_DATAGRAM_WAIT
) -> MediaTransport:
    """``transport`` once the peer's first datagram came (or ``wait`` seconds passed, or it
    closed), with what was read put back in front."""
    with trio.move_on_after(wait):
        try:
            first = await transport.receive_datagram_batch()
        except TransportClosed:
            return transport
        return Primed(transport, first)
    return transport
