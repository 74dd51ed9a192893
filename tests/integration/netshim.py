"""``python -m tests.integration.netshim ARGS...``: ``sealrelay ARGS...`` on a network the
test shapes, for the call integration tests (issue 17).

Two knobs, read from the environment before the CLI starts:

``SEALRELAY_TEST_SOURCE_IP``
    every IPv4 socket the process opens towards the loopback network leaves from this
    address (Linux routes all of 127.0.0.0/8 to ``lo``, but picks 127.0.0.1 as the source
    unless a socket is bound): a client with an address of its own, so a test can look for
    it where it must not be.
``SEALRELAY_TEST_BLOCK_UDP``
    (any non-empty value) every UDP datagram the process sends is silently dropped, as on
    a network that blocks UDP: QUIC never connects, so the client has to fall back.

Only this process's sockets change; nothing of the machine does.
"""

from __future__ import annotations

import ipaddress
import os
import runpy
import socket
from typing import Any, Final

SOURCE_IP_ENV: Final = "SEALRELAY_TEST_SOURCE_IP"
BLOCK_UDP_ENV: Final = "SEALRELAY_TEST_BLOCK_UDP"
_LOOPBACK: Final = ipaddress.ip_network("127.0.0.0/8")
_ANY: Final = ("0.0.0.0", "")  # noqa: S104 - what a client binds when it lets the kernel pick


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return False
    try:
        return ipaddress.ip_address(address[0]) in _LOOPBACK
    except ValueError:
        return False


def _unbound(sock: socket.socket) -> bool:
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return True
    return port == 0 and host in _ANY


def install_source(source: str) -> None:
    """Bind every unbound IPv4 socket to ``source`` before it connects or sends to a
    loopback address, and every bind to the wildcard address to ``source`` instead."""
    original_bind = socket.socket.bind
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto

    def bind(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_INET and isinstance(address, tuple) and address[0] in _ANY:
            address = (source, *address[1:])
        original_bind(self, address)

    def prepare(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_INET and _is_loopback(address) and _unbound(self):
            original_bind(self, (source, 0))

    def connect(self: socket.socket, address: Any) -> None:
        prepare(self, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        prepare(self, address)
        return original_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        prepare(self, args[-1])
        return original_sendto(self, data, *args)

    socket.socket.bind = bind  # type: ignore[method-assign,assignment]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[assignment]


def install_udp_block() -> None:
    """Drop every datagram this process sends (reporting it sent, as a filter would)."""
    original_sendto = socket.socket.sendto
    original_send = socket.socket.send
    original_sendmsg = socket.socket.sendmsg

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        if self.type == socket.SOCK_DGRAM:
            return len(data)
        return original_sendto(self, data, *args)

    def send(self: socket.socket, data: Any, *args: Any) -> int:
        if self.type == socket.SOCK_DGRAM:
            return len(data)
        return original_send(self, data, *args)

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
        if self.type == socket.SOCK_DGRAM:
            return sum(len(b) for b in buffers)
        return original_sendmsg(self, buffers, *args)

    socket.socket.sendto = sendto  # type: ignore[assignment]
    socket.socket.send = send  # type: ignore[method-assign,assignment]
    socket.socket.sendmsg = sendmsg  # type: ignore[method-assign,assignment]


def main() -> None:
    source = os.environ.get(SOURCE_IP_ENV)
    if source:
        install_source(source)
    if os.environ.get(BLOCK_UDP_ENV):
        install_udp_block()
    runpy.run_module("sealrelay", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
