"""The call relay's trio shell over real loopback UDP (node.calls.shell; issue 17, "the
media path"): clients bind QUIC connections to their legs with ``wire.media_control`` and
exchange media through the node, which forwards without a key; datagrams with another
leg's sender id or garbage are dropped and counted while the call goes on; refused binds
get their stable code; the sweep ends idle legs and closes their connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio

from client.calls.fixture import load_fixture, play
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import FixtureCheck, Receiver
from node.calls import IDLE_TIMEOUT_MS, CallRelay, DropReason, Ended, EndReason, Leg
from node.calls.shell import CallService
from node.errors import CALL_BAD_SECRET, CALL_EXPIRED, CALL_NO_LEG
from tests.node.calls.helpers import T0, Draws, datagram, sender_of
from transport import QuicChannel, QuicIdentity, TransportClosed, connect_quic
from wire import encode
from wire.media import MediaKind
from wire.media_control import MediaBind, MediaBound, MediaRefused, decode_bind_answer

LOOPBACK = "127.0.0.1"
STEP_TIMEOUT = 3.0
SWEEP_INTERVAL = 0.05
OWNER_A, OWNER_B = "conn-a", "conn-b"
FIXTURE = load_fixture()
IDENTITY = QuicIdentity.generate()


@dataclass
class Clock:
    """The injected Unix-ms clock; tests move it."""

    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Node:
    nursery: trio.Nursery
    service: CallService
    core: CallRelay
    clock: Clock
    port: int
    ended: list[Ended] = field(default_factory=list)

    async def connect(self) -> QuicChannel:
        with trio.fail_after(STEP_TIMEOUT):
            return await connect_quic(self.nursery, LOOPBACK, self.port, pin=self.service.pin)

    async def bind(self, leg: Leg, secret: bytes | None = None) -> tuple[QuicChannel, int]:
        """A client connection bound to ``leg``; (connection, its sender id)."""
        channel = await self.connect()
        answer = await bind(channel, leg.leg_id, leg.leg_secret if secret is None else secret)
        assert isinstance(answer, MediaBound)
        assert answer.leg_id == leg.leg_id
        return channel, answer.sender

    def call(self) -> tuple[Leg, Leg]:
        """Two legs of this node joined into one call (a call within one domain)."""
        a = self.core.allocate(OWNER_A, self.clock.now)
        b = self.core.allocate(OWNER_B, self.clock.now)
        self.core.join(a.leg_id, b.leg_id, self.clock.now)
        return a, b


@asynccontextmanager
async def running_node(bind_timeout: float = STEP_TIMEOUT) -> AsyncIterator[Node]:
    clock = Clock()
    core = CallRelay(Draws())
    ended: list[Ended] = []
    service = CallService(
        core,
        IDENTITY,
        now_ms=clock,
        bind_timeout=bind_timeout,
        sweep_interval=SWEEP_INTERVAL,
        on_ended=ended.append,
    )
    async with trio.open_nursery() as nursery:
        address = await nursery.start(service.serve, LOOPBACK, 0)
        yield Node(nursery, service, core, clock, address[1], ended)
        nursery.cancel_scope.cancel()


async def bind(channel: QuicChannel, leg_id: bytes, secret: bytes) -> MediaBound | MediaRefused:
    with trio.fail_after(STEP_TIMEOUT):
        await channel.send_control(encode(MediaBind(leg_id, secret)))
        return decode_bind_answer(await channel.receive_control())


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(STEP_TIMEOUT):
        while not condition():  # noqa: ASYNC110 - polled counters, no event to wait on
            await trio.sleep(0.005)


async def receive(channel: QuicChannel, count: int) -> list[bytes]:
    received: list[bytes] = []
    with trio.fail_after(STEP_TIMEOUT):
        while len(received) < count:
            received += await channel.receive_datagram_batch()
    return received


async def test_media_through_the_node_decrypts_end_to_end() -> None:
    """The fixture's Opus and VP8 frames, SFrame-encrypted by the caller, arrive through
    the node at the callee, decrypt and match their digests; and back the other way."""
    secret = CallSecret(bytes(range(32)))
    async with running_node() as node:
        a, b = node.call()
        (caller, caller_id), (callee, callee_id) = await node.bind(a), await node.bind(b)
        assert caller_id != callee_id
        up = Packetizer(MediaCrypto(secret, Direction.CALLER_TO_CALLEE, now=0.0), caller_id)
        down = Packetizer(MediaCrypto(secret, Direction.CALLEE_TO_CALLER, now=0.0), callee_id)
        at_callee = Receiver(
            MediaCrypto(secret, Direction.CALLEE_TO_CALLER, now=0.0), check=FixtureCheck(FIXTURE)
        )
        at_caller = Receiver(
            MediaCrypto(secret, Direction.CALLER_TO_CALLEE, now=0.0), check=FixtureCheck(FIXTURE)
        )
        sent = 0
        for s in play(FIXTURE, (MediaKind.AUDIO, MediaKind.VIDEO), 1_000_000):
            datagrams = up.packetize(OutgoingFrame.from_fixture(s.frame), now=s.at_us / 1e6)
            await caller.send_datagrams(datagrams)
            for d in await receive(callee, len(datagrams)):
                assert sender_of(d) == caller_id  # a client leg's datagrams leave as they came
                at_callee.receive(d, now=s.at_us / 1e6 + 0.01)
            sent += len(datagrams)
        back = down.packetize(
            OutgoingFrame.from_fixture(FIXTURE.frame_at(MediaKind.AUDIO, 0)), now=0.0
        )
        await callee.send_datagrams(back)
        for d in await receive(caller, len(back)):
            at_caller.receive(d, now=0.01)
        at_callee.finish()
        at_caller.finish()

        assert at_callee.counters.frames_received == up.frames_sent == 50 + 30
        assert at_caller.counters.frames_received == 1
        for counters in (at_callee.counters, at_caller.counters):
            assert (counters.decrypt_failures, counters.digest_mismatches) == (0, 0)
        stats = node.core.stats()
        assert stats.forwarded == sent + len(back)
        assert sum(stats.drops.values()) == 0
        assert node.service.stats().bound == 2


async def test_foreign_sender_and_garbage_are_dropped_and_the_call_goes_on() -> None:
    async with running_node() as node:
        a, b = node.call()
        (caller, caller_id), (callee, callee_id) = await node.bind(a), await node.bind(b)
        await caller.send_datagram(datagram(callee_id, b"forged: the callee's stream"))
        await caller.send_datagram(b"\xff not a media datagram")
        await caller.send_datagram(datagram(caller_id, b"after the bad ones"))
        (forwarded,) = await receive(callee, 1)
        assert forwarded == datagram(caller_id, b"after the bad ones")
        await until(lambda: node.core.stats().drops[DropReason.MALFORMED] == 1)
        drops = node.core.stats().drops
        assert drops[DropReason.STREAM_NOT_BOUND] == 1
        assert node.core.stats().forwarded == 1
        await callee.send_datagram(datagram(callee_id, b"the call goes on"))
        assert await receive(caller, 1) == [datagram(callee_id, b"the call goes on")]


@pytest.mark.parametrize(
    ("case", "code"),
    [("wrong secret", CALL_BAD_SECRET), ("unknown leg", CALL_NO_LEG), ("late", CALL_EXPIRED)],
)
async def test_a_refused_bind_gets_its_code_and_the_connection_closes(case: str, code: str) -> None:
    async with running_node() as node:
        leg = node.core.allocate(OWNER_A, node.clock.now)
        leg_id, secret = leg.leg_id, leg.leg_secret
        if case == "wrong secret":
            secret = bytes(32)
        elif case == "unknown leg":
            leg_id = bytes(16)
        else:
            node.clock.now += 10 * IDLE_TIMEOUT_MS
        channel = await node.connect()
        answer = await bind(channel, leg_id, secret)
        assert isinstance(answer, MediaRefused)
        assert answer.code == code
        with trio.fail_after(STEP_TIMEOUT):
            await channel.terminated.wait()
        assert node.service.counters.refused == 1
        assert node.core.stats().bound_legs == 0


async def test_a_malformed_control_message_closes_only_that_connection() -> None:
    async with running_node() as node:
        a, _ = node.call()
        bad = await node.connect()
        await bad.send_control(b"\x93not a bind")
        with trio.fail_after(STEP_TIMEOUT):
            await bad.terminated.wait()
        assert node.service.stats().malformed_control == 1
        _, sender = await node.bind(a)  # the server goes on
        assert node.core.stats().bound_legs == 1
        assert sender


async def test_a_connection_that_does_not_bind_in_time_is_closed() -> None:
    async with running_node(bind_timeout=0.2) as node:
        idle = await node.connect()
        with trio.fail_after(STEP_TIMEOUT):
            await idle.terminated.wait()
        assert node.service.counters.bind_timeouts == 1


async def test_the_sweep_ends_idle_legs_and_closes_their_connections() -> None:
    async with running_node() as node:
        a, b = node.call()
        (caller, _), (callee, _) = await node.bind(a), await node.bind(b)
        node.clock.now += IDLE_TIMEOUT_MS
        with trio.fail_after(STEP_TIMEOUT):
            await caller.terminated.wait()
            await callee.terminated.wait()
        assert {e.leg_id for e in node.ended} == {a.leg_id, b.leg_id}
        assert {e.reason for e in node.ended} == {EndReason.EXPIRED, EndReason.PEER_ENDED}
        assert node.core.stats().legs == 0
        with pytest.raises(TransportClosed):
            await caller.send_datagram(datagram(1))


async def test_a_closed_connection_unbinds_and_a_reconnect_rebinds() -> None:
    async with running_node() as node:
        a, b = node.call()
        (caller, caller_id), (callee, _) = await node.bind(a), await node.bind(b)
        await caller.aclose()
        await until(lambda: node.core.stats().bound_legs == 1)
        again, sender = await node.bind(a)
        assert sender == caller_id  # the leg keeps its sender id across rebinds
        await again.send_datagram(datagram(caller_id, b"back"))
        assert await receive(callee, 1) == [datagram(caller_id, b"back")]


async def test_a_second_connection_on_a_leg_replaces_the_first() -> None:
    async with running_node() as node:
        a, _ = node.call()
        first, _ = await node.bind(a)
        second, _ = await node.bind(a)
        with trio.fail_after(STEP_TIMEOUT):
            await first.terminated.wait()
        assert not second.terminated.is_set()
        assert node.core.stats().bound_legs == 1
