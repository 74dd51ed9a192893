"""A UDP socket driven by trio's I/O manager, drained on each wake-up.

``trio.socket`` has no "receive if one is ready" call: every ``await sock.recvfrom()`` is a
checkpoint, so draining a burst costs a scheduler round trip per datagram. Instead the shell
holds a non-blocking stdlib socket, waits with ``trio.lowlevel.wait_readable`` once, then
reads with plain ``recvfrom`` until ``BlockingIOError`` (or ``MAX_DRAIN`` datagrams, so a
flood cannot starve other tasks). Sends are non-blocking too: UDP send only blocks when the
kernel's buffer is full, and then the datagram is dropped and counted -- QUIC's loss recovery
resends what must arrive, and media is loss-tolerant.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from typing import Any, Final

import trio

MAX_DRAIN: Final = 256
"""Most datagrams read per wake-up before the socket task lets others run."""
SOCKET_BUFFER: Final = 4 * 1024 * 1024
"""Bytes of kernel receive and send buffer a media socket asks for (:func:`_widen_buffers`)."""

RECV_SIZE: Final = 65536
"""Receive buffer per ``recvfrom``: any UDP payload fits, a truncated one cannot happen."""

Address = Any
"""A socket address as ``recvfrom`` returns it: ``(host, port)`` or the IPv6 4-tuple."""


@dataclass
class SocketCounters:
    """What the socket task saw; mutable, owned by one endpoint (see ``EndpointStats``)."""

    udp_received: int = 0
    udp_sent: int = 0
    udp_send_failed: int = 0
    udp_receive_errors: int = 0
    wakeups: int = 0
    """Drains of the socket task (after a wake-up, or again right after a non-empty one):
    ``udp_received / wakeups`` is how well it batches."""


class UdpSocket:
    """A bound non-blocking UDP socket; ``receive_burst`` drains, ``send`` never blocks."""

    def __init__(self, sock: socket.socket, counters: SocketCounters) -> None:
        sock.setblocking(False)
        self._sock = sock
        self.counters = counters

    @classmethod
    def bind(cls, host: str, port: int, counters: SocketCounters) -> UdpSocket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            _widen_buffers(sock)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return cls(sock, counters)

    @property
    def local_address(self) -> Address:
        return self._sock.getsockname()

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self._sock)

    def receive_burst(self) -> list[tuple[bytes, Address]]:
        """Every datagram waiting now (at most ``MAX_DRAIN``); never blocks."""
        burst: list[tuple[bytes, Address]] = []
        while len(burst) < MAX_DRAIN:
            try:
                burst.append(self._sock.recvfrom(RECV_SIZE))
            except BlockingIOError:
                break
            except OSError:  # e.g. an ICMP error queued on the socket: skip it, go on
                self.counters.udp_receive_errors += 1
        self.counters.udp_received += len(burst)
        return burst

    def send(self, data: bytes, address: Address) -> bool:
        """Send one datagram now; ``False`` (counted) when the kernel refused it."""
        try:
            self._sock.sendto(data, address)
        except OSError:  # BlockingIOError included: a full buffer is loss, not an error
            self.counters.udp_send_failed += 1
            return False
        self.counters.udp_sent += 1
        return True

    def close(self) -> None:
        self._sock.close()


def _widen_buffers(sock: socket.socket) -> None:
    """Ask for :data:`SOCKET_BUFFER` bytes of kernel receive and send buffer: at the
    default (about 208 KiB on Linux) a node forwarding 20 video calls on a busy machine
    lost datagrams in the kernel while its task waited for a CPU (``make bench calls``).
    Linux caps the request at ``net.core.rmem_max`` / ``wmem_max``; nothing fails if it
    is smaller."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
