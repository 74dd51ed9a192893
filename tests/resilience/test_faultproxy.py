"""The fault proxy itself: each fault does what it says, on real loopback sockets, against
a small echo server that records what reached it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trio

from tests.resilience.faultproxy import DOWN, LOOPBACK, UP, TcpProxy, UdpProxy

WAIT = 5.0  # bound of every wait of these tests (s)


@dataclass
class Target:
    """An echo server (unless ``echo`` is false) that records what reached it."""

    echo: bool = True
    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    reads: int = 0
    ended: trio.Event = field(default_factory=trio.Event)
    ended_at: float = 0.0
    how: str = ""

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(65536):
                self.received += data
                self.reads += 1
                if self.echo:
                    await stream.send_all(data)
            self.how = "eof"
        except trio.BrokenResourceError:
            self.how = "reset"
        self.ended_at = time.monotonic()
        self.ended.set()


@contextlib.asynccontextmanager
async def rig(echo: bool = True) -> AsyncIterator[tuple[Target, TcpProxy]]:
    target = Target(echo)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, target.handle, 0)
        target.port = listeners[0].socket.getsockname()[1]
        proxy = await nursery.start(TcpProxy(LOOPBACK, target.port).run)
        try:
            with trio.fail_after(WAIT):
                yield target, proxy
        finally:
            while OPEN:
                OPEN.pop().socket.close()
        nursery.cancel_scope.cancel()


OPEN: list[trio.SocketStream] = []  # the test's client streams, closed by ``rig``


async def dial(proxy: TcpProxy) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(LOOPBACK, proxy.port)
    OPEN.append(stream)
    return stream


async def read_exactly(stream: trio.SocketStream, n: int) -> bytes:
    got = b""
    while len(got) < n:
        data = await stream.receive_some(n - len(got))
        assert data, "closed early"
        got += data
    return got


async def nothing_within(stream: trio.SocketStream, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await stream.receive_some(1)
        return False
    return True


async def broken(stream: trio.SocketStream) -> bool:
    """The stream ends in a reset (or a close) at its next read."""
    try:
        return await stream.receive_some(1) == b""
    except trio.BrokenResourceError:
        return True


async def test_pass_relays_both_ways() -> None:
    async with rig() as (target, proxy):
        stream = await dial(proxy)
        await stream.send_all(b"x" * 100_000)
        assert await read_exactly(stream, 100_000) == b"x" * 100_000
        assert bytes(target.received) == b"x" * 100_000


async def test_cut_resets_open_and_new_connections_until_healed() -> None:
    async with rig() as (target, proxy):
        stream = await dial(proxy)
        await stream.send_all(b"ping")
        assert await read_exactly(stream, 4) == b"ping"
        proxy.cut()
        assert await broken(stream)
        await target.ended.wait()
        assert target.how == "reset"
        fresh = await dial(proxy)
        with contextlib.suppress(trio.BrokenResourceError):
            await fresh.send_all(b"lost")
        assert await broken(fresh)
        proxy.heal()
        again = await dial(proxy)
        await again.send_all(b"back")
        assert await read_exactly(again, 4) == b"back"
        assert b"lost" not in target.received


async def test_black_hole_accepts_and_swallows() -> None:
    async with rig() as (target, proxy):
        stream = await dial(proxy)
        proxy.black_hole()
        await stream.send_all(b"into the void")
        assert await nothing_within(stream, 0.5)
        assert not target.received
        proxy.heal()
        await stream.send_all(b"after")
        assert await read_exactly(stream, 5) == b"after"  # swallowed bytes stay gone


async def test_delay_adds_latency_each_way() -> None:
    async with rig() as (_, proxy):
        stream = await dial(proxy)
        proxy.delay(0.3)
        start = time.monotonic()
        await stream.send_all(b"slow")
        assert await read_exactly(stream, 4) == b"slow"
        assert time.monotonic() - start >= 0.6


async def test_throttle_limits_bandwidth() -> None:
    async with rig() as (_, proxy):
        stream = await dial(proxy)
        proxy.throttle(10_000)
        start = time.monotonic()
        await stream.send_all(b"t" * 4000)
        assert await read_exactly(stream, 4000) == b"t" * 4000
        assert time.monotonic() - start >= 0.75  # 0.4 s up and 0.4 s down


async def test_reset_after_n_bytes_cuts_mid_stream() -> None:
    async with rig(echo=False) as (target, proxy):
        stream = await dial(proxy)
        proxy.reset_after(100)
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(b"r" * 1000)
        assert await broken(stream)
        await target.ended.wait()
        assert target.how == "reset"
        assert bytes(target.received) == b"r" * 100


async def test_slow_close_holds_the_close_back() -> None:
    async with rig(echo=False) as (target, proxy):
        stream = await dial(proxy)
        proxy.slow_close(0.5)
        await stream.send_all(b"bye")
        start = time.monotonic()
        await stream.send_eof()
        await target.ended.wait()
        assert target.how == "eof"
        assert target.ended_at - start >= 0.45
        assert bytes(target.received) == b"bye"


async def test_slicer_splits_writes_into_pieces() -> None:
    async with rig(echo=False) as (target, proxy):
        stream = await dial(proxy)
        proxy.slice(10, 0.02)
        start = time.monotonic()
        await stream.send_all(bytes(range(100)))
        await stream.send_eof()
        await target.ended.wait()
        assert time.monotonic() - start >= 0.18  # 10 pieces, 9 pauses at least
        assert target.reads > 1
        assert bytes(target.received) == bytes(range(100))


@pytest.mark.parametrize("passing", [UP, DOWN])
async def test_one_way_cut_passes_one_direction_only(passing: str) -> None:
    async with rig() as (target, proxy):
        stream = await dial(proxy)
        proxy.one_way(passing)
        await stream.send_all(b"one way")
        assert await nothing_within(stream, 0.5)  # no echo either way
        assert bytes(target.received) == (b"one way" if passing == UP else b"")


async def test_udp_passes_drops_and_cuts_one_way() -> None:
    async with trio.open_nursery() as nursery:
        echo = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
        client = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
        stack = contextlib.ExitStack()
        stack.enter_context(echo)
        stack.enter_context(client)
        await echo.bind((LOOPBACK, 0))
        seen: list[bytes] = []

        async def serve() -> None:
            while True:
                data, addr = await echo.recvfrom(2048)
                seen.append(data)
                await echo.sendto(data, addr)

        nursery.start_soon(serve)
        proxy = await nursery.start(UdpProxy(LOOPBACK, echo.getsockname()[1]).run)
        await client.connect((LOOPBACK, proxy.port))

        async def echoed(data: bytes) -> bool:
            await client.send(data)
            with trio.move_on_after(0.5):
                return await client.recv(2048) == data
            return False

        with trio.fail_after(WAIT):
            assert await echoed(b"a")
            proxy.black_hole()
            assert not await echoed(b"b")
            proxy.one_way(UP)
            assert not await echoed(b"c")
            proxy.heal()
            assert await echoed(b"d")
        assert seen == [b"a", b"c", b"d"]
        nursery.cancel_scope.cancel()
        stack.close()
