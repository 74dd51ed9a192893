"""The one task of a UDP socket: wait, drain, feed each datagram to its connection,
service due timers, flush -- then sleep until the socket is readable or the earliest QUIC
deadline, converted to trio's clock (``transport.clock``).

The loop never awaits between reading the socket and flushing, so application tasks that
send on a channel run only while the loop waits; their sends go out at once and may move a
deadline earlier, which ``Wakeup.tighten`` applies to the wait's cancel scope.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import Protocol

import trio

from transport.clock import QuicClock
from transport.quic import QuicChannel
from transport.udp import Address, UdpSocket


class Router(Protocol):
    """Who owns the connections of a socket: maps a datagram to one, reaps closed ones."""

    def route(self, data: bytes, address: Address) -> QuicChannel | None:
        """The connection ``data`` belongs to (a new one for a valid Initial), or ``None``
        when the datagram is dropped (and counted)."""

    def channels(self) -> Collection[QuicChannel]: ...

    def reap(self, channel: QuicChannel) -> None: ...


class Wakeup:
    """The socket task's current wait; ``tighten`` moves its deadline earlier."""

    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None

    def tighten(self, trio_deadline: float) -> None:
        if self.scope is not None and trio_deadline < self.scope.deadline:
            self.scope.deadline = trio_deadline


class SocketLoop:
    def __init__(self, sock: UdpSocket, router: Router, clock: QuicClock, wakeup: Wakeup) -> None:
        self._sock, self._router, self._clock, self._wakeup = sock, router, clock, wakeup

    async def run(self) -> None:
        """Serve the socket until cancelled.

        While datagrams keep coming, the loop only yields (a checkpoint) between bursts;
        it registers with the I/O manager and sleeps only when a drain found nothing."""
        while True:
            if self.service():
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope(deadline=self._next_deadline()) as scope:
                self._wakeup.scope = scope
                await self._sock.wait_readable()
            self._wakeup.scope = None

    def service(self) -> bool:
        """One wake-up's work; synchronous, so no other task sees a half-fed connection.
        Whether any datagram was read."""
        now = self._clock.now()
        self._sock.counters.wakeups += 1
        touched: dict[int, QuicChannel] = {}
        burst = self._sock.receive_burst()
        for channel, address, datagrams in self._group(burst):
            channel.feed(datagrams, address, now)
            touched[id(channel)] = channel
        for channel in list(self._router.channels()):
            deadline = channel.timer()
            if deadline is not None and deadline <= now:
                channel.handle_timer(now)
                touched[id(channel)] = channel
        for channel in touched.values():
            channel.service()
        for channel in [c for c in self._router.channels() if c.terminated.is_set()]:
            self._router.reap(channel)
        return bool(burst)

    def _group(
        self, burst: list[tuple[bytes, Address]]
    ) -> Iterator[tuple[QuicChannel, Address, list[bytes]]]:
        """The burst's datagrams by connection and source address, each group in arrival
        order; dropped datagrams (``route`` gave ``None``) are left out."""
        groups: dict[tuple[int, Address], tuple[QuicChannel, list[bytes]]] = {}
        for data, address in burst:
            channel = self._router.route(data, address)
            if channel is None:
                continue
            key = (id(channel), address)
            if key in groups:
                groups[key][1].append(data)
            else:
                groups[key] = (channel, [data])
        for (_, address), (channel, datagrams) in groups.items():
            yield channel, address, datagrams

    def _next_deadline(self) -> float:
        timers = [t for c in self._router.channels() if (t := c.timer()) is not None]
        return self._clock.to_trio(min(timers)) if timers else math.inf
