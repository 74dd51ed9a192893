"""A fault-injecting proxy on loopback, switched at run time by the test (the faults of
Toxiproxy, whose server is not available here).

    async with trio.open_nursery() as nursery:
        proxy = await nursery.start(TcpProxy("127.0.0.1", target_port).run)
        url = f"http://127.0.0.1:{proxy.port}"          # point a peer's endpoint here
        proxy.cut()                  # reset every connection, old and new
        proxy.black_hole()           # accept, never answer: bytes both ways are swallowed
        proxy.delay(2.0)             # every chunk arrives 2 s later (both directions)
        proxy.throttle(10_000)       # at most 10 kB/s each way
        proxy.reset_after(4096)      # each connection is reset after 4 KiB more upstream
        proxy.slow_close(3.0)        # a side's close reaches the other 3 s late
        proxy.slice(16, 0.005)       # writes go out in 16-byte pieces, 5 ms apart
        proxy.one_way(UP)            # client -> server passes; server -> client dropped
        proxy.heal()                 # pass everything again

*Upstream* (``UP``) is client to target, *downstream* (``DOWN``) the answers. A fault set
while connections are open applies to them from their next chunk on (as a toxic does);
bytes swallowed while a direction drops are gone, so a request caught in a black hole
stays unanswered after the heal, as behind a firewall that lost the flow's state.
:class:`UdpProxy` does the same for datagrams (drop, one-way and delay).
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final, Self

import trio

LOOPBACK: Final = "127.0.0.1"
UP: Final = "up"
DOWN: Final = "down"
CHUNK: Final = 65536
DATA: Final = "data"
EOF: Final = "eof"
RESET: Final = "reset"


@dataclass(frozen=True)
class Toxic:
    """What happens to the bytes of one direction."""

    drop: bool = False  # swallow every byte
    latency: float = 0.0  # seconds added to every chunk
    rate: float = math.inf  # bytes per second
    reset_after: int | None = None  # reset the connection after this many more bytes
    piece: int = 0  # write in pieces of this many bytes (0: as read)
    piece_pause: float = 0.0
    close_delay: float = 0.0  # seconds before a close (EOF) is passed on


CLEAN: Final = Toxic()


def reset(stream: trio.SocketStream) -> None:
    """Close ``stream`` with a TCP RST (SO_LINGER 0) rather than a FIN."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


@dataclass(eq=False)
class _Conn:
    client: trio.SocketStream
    server: trio.SocketStream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    carried: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})
    was_reset: bool = False
    closed: set[str] = field(default_factory=set)

    def close_half(self, direction: str) -> None:
        """``direction`` passed its EOF on; when both have, the connection is over."""
        self.closed.add(direction)
        if len(self.closed) == 2:
            self.scope.cancel()

    def reset(self) -> None:
        self.was_reset = True
        reset(self.client)
        reset(self.server)
        self.scope.cancel()


class TcpProxy:
    """Listens on a free loopback port and relays each connection to ``target``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.toxics: dict[str, Toxic] = {UP: CLEAN, DOWN: CLEAN}
        self.refusing = False
        self.conns: set[_Conn] = set()
        self.accepted = 0
        self.resets = 0

    # --- the switches ---------------------------------------------------------------------

    def heal(self) -> None:
        self.refusing = False
        self.toxics = {UP: CLEAN, DOWN: CLEAN}

    def cut(self) -> None:
        """Reset every open connection and every new one until :meth:`heal`."""
        self.heal()
        self.refusing = True
        for conn in list(self.conns):
            conn.reset()

    def black_hole(self) -> None:
        self._set(drop=True)

    def delay(self, seconds: float) -> None:
        self._set(latency=seconds)

    def throttle(self, bytes_per_s: float) -> None:
        self._set(rate=bytes_per_s)

    def reset_after(self, nbytes: int, direction: str = UP) -> None:
        """Each connection is reset once it has carried ``nbytes`` more in ``direction``
        (the first ones are passed on: the peer sees a cut in the middle of a request)."""
        self.heal()
        for conn in self.conns:
            conn.carried[direction] = 0
        self.toxics[direction] = replace(CLEAN, reset_after=nbytes)

    def slow_close(self, seconds: float) -> None:
        self._set(close_delay=seconds)

    def slice(self, size: int, pause: float = 0.0) -> None:
        self._set(piece=size, piece_pause=pause)

    def one_way(self, passing: str) -> None:
        """Bytes in direction ``passing`` go through; the other direction's are dropped."""
        self.heal()
        self.toxics[DOWN if passing == UP else UP] = replace(CLEAN, drop=True)

    def _set(self, **toxic: float | bool | int) -> None:
        self.heal()
        self.toxics = {d: replace(CLEAN, **toxic) for d in (UP, DOWN)}  # type: ignore[arg-type]

    # --- the relay ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        if self.refusing:
            reset(client)
            return
        try:
            server = await trio.open_tcp_stream(*self.target)
        except OSError:
            reset(client)
            return
        conn = _Conn(client, server)
        self.conns.add(conn)
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, conn, UP, client, server)
                    nursery.start_soon(self._pump, conn, DOWN, server, client)
        finally:
            self.conns.discard(conn)
            self.resets += conn.was_reset
            for stream in (client, server):
                with contextlib.suppress(OSError, trio.ClosedResourceError):
                    stream.socket.close()

    async def _pump(
        self, conn: _Conn, direction: str, src: trio.SocketStream, dst: trio.SocketStream
    ) -> None:
        """Read ``src``, apply the direction's toxic, write ``dst`` in order (a writer task
        holds each chunk until its due time)."""
        send, receive = trio.open_memory_channel[_Item](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, conn, direction, dst, receive)
            while True:
                try:
                    data = await src.receive_some(CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    conn.reset()
                    return
                toxic = self.toxics[direction]
                if toxic.drop:
                    if not data:  # the close is swallowed too
                        await trio.sleep_forever()
                    continue
                data, cut_here = _budget(conn, direction, toxic, data)
                due = trio.current_time() + toxic.latency
                if data or not cut_here:
                    send.send_nowait(_Item(due, data, DATA if data else EOF))
                if cut_here:
                    send.send_nowait(_Item(due, b"", RESET))
                if cut_here or not data:
                    await trio.sleep_forever()  # the writer ends this direction

    async def _writer(
        self,
        conn: _Conn,
        direction: str,
        dst: trio.SocketStream,
        items: trio.MemoryReceiveChannel[_Item],
    ) -> None:
        async for item in items:
            await trio.sleep_until(item.due)
            toxic = self.toxics[direction]
            if item.kind == RESET:
                conn.reset()
                return
            try:
                if item.kind == EOF:
                    await trio.sleep(toxic.close_delay)
                    await dst.send_eof()
                    conn.close_half(direction)
                    return
                for piece in _pieces(item.data, toxic.piece):
                    await trio.sleep(len(piece) / toxic.rate)  # the bandwidth it takes
                    await dst.send_all(piece)
                    await trio.sleep(toxic.piece_pause)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                conn.reset()
                return


@dataclass(frozen=True)
class _Item:
    due: float
    data: bytes
    kind: str


def _budget(conn: _Conn, direction: str, toxic: Toxic, data: bytes) -> tuple[bytes, bool]:
    """``data`` cut to what the reset budget allows, and whether the connection ends here."""
    if toxic.reset_after is None:
        return data, False
    room = toxic.reset_after - conn.carried[direction]
    conn.carried[direction] += len(data)
    if len(data) < room:
        return data, False
    return data[: max(room, 0)], True


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    if size <= 0:
        yield data
        return
    for at in range(0, len(data), size):
        yield data[at : at + size]


class UdpProxy:
    """Relays datagrams between clients and ``target``, one upstream socket per client
    address; a direction may drop (:meth:`black_hole`, :meth:`one_way`) or delay."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.toxics: dict[str, Toxic] = {UP: CLEAN, DOWN: CLEAN}
        self.front = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.upstream: dict[tuple[str, int], trio.socket.SocketType] = {}
        self.dropped = 0

    def heal(self) -> None:
        self.toxics = {UP: CLEAN, DOWN: CLEAN}

    def black_hole(self) -> None:
        self.toxics = {UP: Toxic(drop=True), DOWN: Toxic(drop=True)}

    def one_way(self, passing: str) -> None:
        self.heal()
        self.toxics[DOWN if passing == UP else UP] = Toxic(drop=True)

    def delay(self, seconds: float) -> None:
        self.toxics = {UP: Toxic(latency=seconds), DOWN: Toxic(latency=seconds)}

    async def run(self, *, task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED) -> None:
        with self.front:
            await self.front.bind((LOOPBACK, 0))
            self.port = self.front.getsockname()[1]
            async with trio.open_nursery() as nursery:
                task_status.started(self)
                while True:
                    data, addr = await self.front.recvfrom(CHUNK)
                    sock = self.upstream.get(addr)
                    if sock is None:
                        sock = self.upstream[addr] = trio.socket.socket(
                            socket.AF_INET, socket.SOCK_DGRAM
                        )
                        await sock.connect(self.target)
                        nursery.start_soon(self._answers, nursery, sock, addr)
                    self._forward(nursery, UP, data, sock, None)

    async def _answers(
        self, nursery: trio.Nursery, sock: trio.socket.SocketType, addr: tuple[str, int]
    ) -> None:
        with sock:
            while True:
                data = await sock.recv(CHUNK)
                self._forward(nursery, DOWN, data, self.front, addr)

    def _forward(
        self,
        nursery: trio.Nursery,
        direction: str,
        data: bytes,
        sock: trio.socket.SocketType,
        addr: tuple[str, int] | None,
    ) -> None:
        toxic = self.toxics[direction]
        if toxic.drop:
            self.dropped += 1
            return
        nursery.start_soon(_send_later, toxic.latency, data, sock, addr)


async def _send_later(
    seconds: float, data: bytes, sock: trio.socket.SocketType, addr: tuple[str, int] | None
) -> None:
    await trio.sleep(seconds)
    with contextlib.suppress(OSError):
        if addr is None:
            await sock.send(data)
        else:
            await sock.sendto(data, addr)
