"""The bind elsewhere between two in-process replicas over real loopback UDP and a real
replica link (node.calls.relayed through node.calls.links; the harness of
``test_replica_links``): one ``CallLegs`` / ``MediaPlacement`` store shared as Redis would
be. A call's two legs are held by replica A; one client binds at A, the other at B, which
relays it: datagrams pass both ways byte for byte, and the client going unbinds its leg at
A."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import trio

from node.calls.legs import ALLOCATION_TIMEOUT_MS, secret_hash
from node.calls.relayed import BindRelays
from node.calls.shell import wall_clock_ms
from node.keys import generate
from node.store import MemoryStore
from node.store.base import LegRecord
from tests.node.calls.helpers import datagram
from tests.node.calls.replicakit import SUITE, Replica
from tests.node.calls.replicakit import replica as _replica
from tests.node.calls.replicakit import until as _until
from transport import QuicChannel, connect_quic
from wire import encode
from wire.media_control import MediaBind, MediaBound, decode_bind_answer

LOOPBACK: Final = "127.0.0.1"
STEP_TIMEOUT: Final = 5.0
A_ID, B_ID = b"a" * 16, b"b" * 16


async def _relays(
    nursery: trio.Nursery, replica: Replica, store: MemoryStore, replica_id: bytes
) -> BindRelays:
    relays = BindRelays(
        replica.service,
        replica.links,
        store,
        store,
        replica=replica_id,
        random=secrets.token_bytes,
        now_ms=wall_clock_ms,
    )
    await nursery.start(relays.run)
    replica.links.relays = relays
    replica.service.elsewhere = relays
    return relays


@asynccontextmanager
async def _bound(
    nursery: trio.Nursery, replica: Replica, leg_id: bytes, secret: bytes
) -> AsyncIterator[tuple[QuicChannel, int]]:
    with trio.fail_after(STEP_TIMEOUT):
        channel = await connect_quic(nursery, LOOPBACK, replica.port, pin=replica.service.pin)
        await channel.send_control(encode(MediaBind(leg_id, secret)))
        answer = decode_bind_answer(await channel.receive_control())
    assert isinstance(answer, MediaBound), answer
    try:
        yield channel, answer.sender
    finally:
        channel.close(0, "done")


async def test_a_bind_at_the_other_replica_is_relayed_over_the_replica_link() -> None:
    keys, store = generate(SUITE), MemoryStore()
    async with trio.open_nursery() as nursery:
        async with _replica(nursery, keys) as a, _replica(nursery, keys) as b:
            served = await _relays(nursery, a, store, A_ID)
            front = await _relays(nursery, b, store, B_ID)
            now = wall_clock_ms()
            await store.announce_media(A_ID, LOOPBACK, a.port, now, 15_000)
            core = a.service.core
            here, there = core.allocate("x", now), core.allocate("y", now)
            core.join(here.leg_id, there.leg_id, now)
            expires = now + ALLOCATION_TIMEOUT_MS
            record = LegRecord(there.leg_id, A_ID, secret_hash(there.leg_secret), expires)
            await store.add_leg(record)
            async with (
                _bound(nursery, a, here.leg_id, here.leg_secret) as (one, one_sender),
                _bound(nursery, b, there.leg_id, there.leg_secret) as (two, two_sender),
            ):
                assert b.links.kinds_up()["replica"] == 1
                to_two = [datagram(one_sender, frame=i) for i in range(5)]
                to_one = [datagram(two_sender, frame=i) for i in range(5)]
                await one.send_datagrams(to_two)
                await two.send_datagrams(to_one)
                with trio.fail_after(STEP_TIMEOUT):
                    got_two = [await two.receive_datagram() for _ in to_two]
                    got_one = [await one.receive_datagram() for _ in to_one]
                assert sorted(got_two) == sorted(to_two)
                assert sorted(got_one) == sorted(to_one)
                assert (front.counts, served.counts) == ({"relayed": 1}, {"served": 1})
                assert core.stats().bound_legs == 2
            await _until(lambda: core.stats().bound_legs == 0)  # the clients went
            await _until(lambda: front.open == served.open == 0)
        nursery.cancel_scope.cancel()
