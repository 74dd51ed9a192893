"""The :class:`~node.store.ports.MediaPlacement` contract: replicas' media addresses until
they expire or are withdrawn, and one holder per meeting room (first claim wins, others
take over only after it expires; only the holder renews or releases), every backend
alike; then the same claim race between two Redis clients, as two replicas would run it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio

from node.store import (
    MediaAddress,
    MediaPlacement,
    PlacementInvalid,
    RedisStore,
    Storage,
    Store,
    StoreClosed,
)
from node.store.placement import MAX_TTL_MS
from node.store.redis_placement import BACKSTOP_GRACE_MS
from tests.node.store.contract import NOW, fresh_prefix
from tests.redisproc import RedisServer, command

A = b"A" * 16
B = b"B" * 16
TTL = 30_000
CLAIMANTS = 8


@pytest.fixture
def placement(storage: Storage) -> MediaPlacement:
    return storage.media_placement


def room() -> bytes:
    return os.urandom(16)


# --- media addresses ---------------------------------------------------------------------


async def test_an_announced_address_is_found_until_it_expires(placement: MediaPlacement) -> None:
    assert await placement.media_address(A, NOW) is None
    await placement.announce_media(A, "10.1.2.3", 7482, NOW, TTL)
    assert await placement.media_address(A, NOW) == MediaAddress("10.1.2.3", 7482)
    assert await placement.media_address(A, NOW + TTL - 1) == MediaAddress("10.1.2.3", 7482)
    assert await placement.media_address(A, NOW + TTL) is None
    assert await placement.media_address(B, NOW) is None


async def test_an_announcement_replaces_the_last_and_is_canonical(
    placement: MediaPlacement,
) -> None:
    await placement.announce_media(A, "10.1.2.3", 7482, NOW, TTL)
    await placement.announce_media(A, "2001:DB8:0::7", 9000, NOW + TTL, TTL)
    assert await placement.media_address(A, NOW + TTL) == MediaAddress("2001:db8::7", 9000)
    await placement.announce_media(B, "127.0.0.1", 65535, NOW, 1)
    assert await placement.media_address(B, NOW) == MediaAddress("127.0.0.1", 65535)


async def test_a_withdrawn_address_is_gone(placement: MediaPlacement) -> None:
    await placement.announce_media(A, "10.1.2.3", 7482, NOW, TTL)
    await placement.announce_media(B, "10.1.2.4", 7482, NOW, TTL)
    assert await placement.withdraw_media(A)
    assert not await placement.withdraw_media(A)
    assert await placement.media_address(A, NOW) is None
    assert await placement.media_address(B, NOW) == MediaAddress("10.1.2.4", 7482)


@pytest.mark.parametrize(
    ("address", "port", "code"),
    [
        ("pod-1.sealrelay.svc", 7482, "placement.address"),
        ("10.1.2.3:7482", 7482, "placement.address"),
        ("0.0.0.0", 7482, "placement.address"),  # noqa: S104 - the address refused
        ("::", 7482, "placement.address"),
        ("239.1.2.3", 7482, "placement.address"),
        ("fe80::1%eth0", 7482, "placement.address"),
        ("", 7482, "placement.address"),
        ("10.1.2.3", 0, "placement.port"),
        ("10.1.2.3", 65536, "placement.port"),
        ("10.1.2.3", True, "placement.port"),
    ],
)
async def test_a_bad_address_is_refused_and_nothing_written(
    placement: MediaPlacement, address: str, port: int, code: str
) -> None:
    await placement.announce_media(A, "10.1.2.3", 7482, NOW, TTL)
    with pytest.raises(PlacementInvalid) as refused:
        await placement.announce_media(A, address, port, NOW, TTL)
    assert refused.value.code == code
    assert await placement.media_address(A, NOW) == MediaAddress("10.1.2.3", 7482)


async def test_bad_ids_and_times_are_refused_with_their_codes(placement: MediaPlacement) -> None:
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("placement.room", lambda: placement.place_room(b"r" * 15, A, NOW, TTL)),
        ("placement.room", lambda: placement.room_holder(b"r" * 17, NOW)),
        ("placement.room", lambda: placement.release_room(b"", A)),
        ("placement.replica", lambda: placement.place_room(room(), b"", NOW, TTL)),
        ("placement.replica", lambda: placement.renew_room(room(), b"r" * 33, NOW, TTL)),
        ("placement.replica", lambda: placement.media_address(b"r" * 33, NOW)),
        ("placement.replica", lambda: placement.announce_media(b"", "10.1.2.3", 7482, NOW, TTL)),
        ("placement.time", lambda: placement.place_room(room(), A, NOW, 0)),
        ("placement.time", lambda: placement.place_room(room(), A, NOW, MAX_TTL_MS + 1)),
        ("placement.time", lambda: placement.place_room(room(), A, -1, TTL)),
        ("placement.time", lambda: placement.room_holder(room(), 2**53)),
        ("placement.time", lambda: placement.announce_media(A, "10.1.2.3", 7482, NOW, -5)),
    ]
    for code, call in calls:
        with pytest.raises(PlacementInvalid) as refused:
            await call()
        assert refused.value.code == code, refused.value
    assert await placement.media_address(A, NOW) is None


# --- room holds --------------------------------------------------------------------------


async def test_the_first_claim_wins(placement: MediaPlacement) -> None:
    r = room()
    assert await placement.room_holder(r, NOW) is None
    assert await placement.place_room(r, A, NOW, TTL) == A
    assert await placement.place_room(r, B, NOW + 1, TTL) == A
    assert await placement.room_holder(r, NOW + 1) == A
    assert await placement.place_room(room(), B, NOW, TTL) == B  # another room is free


async def test_concurrent_claims_have_one_winner(placement: MediaPlacement) -> None:
    r = room()
    replicas = [bytes([i]) * 8 for i in range(1, CLAIMANTS + 1)]
    results: list[bytes] = []

    async def claim(replica: bytes) -> None:
        results.append(await placement.place_room(r, replica, NOW, TTL))

    async with trio.open_nursery() as nursery:
        for replica in replicas:
            nursery.start_soon(claim, replica)
    assert len(results) == CLAIMANTS
    assert len(set(results)) == 1
    assert results[0] in replicas
    assert await placement.room_holder(r, NOW) == results[0]


async def test_expiry_lets_another_replica_take_over(placement: MediaPlacement) -> None:
    r = room()
    assert await placement.place_room(r, A, NOW, TTL) == A
    assert await placement.place_room(r, B, NOW + TTL - 1, TTL) == A
    assert await placement.room_holder(r, NOW + TTL) is None
    assert await placement.place_room(r, B, NOW + TTL, TTL) == B
    assert await placement.room_holder(r, NOW + TTL) == B
    assert not await placement.renew_room(r, A, NOW + TTL, TTL)
    assert not await placement.release_room(r, A)
    assert await placement.room_holder(r, NOW + TTL) == B


async def test_the_holder_renews_and_a_claim_by_it_extends(placement: MediaPlacement) -> None:
    r = room()
    await placement.place_room(r, A, NOW, TTL)
    assert await placement.renew_room(r, A, NOW + TTL - 1, TTL)
    assert await placement.room_holder(r, NOW + 2 * TTL - 2) == A
    assert await placement.room_holder(r, NOW + 2 * TTL - 1) is None
    assert await placement.place_room(r, A, NOW + 2 * TTL - 2, TTL) == A  # a retried claim
    assert await placement.room_holder(r, NOW + 3 * TTL - 3) == A


async def test_only_the_holder_renews(placement: MediaPlacement) -> None:
    r = room()
    assert not await placement.renew_room(r, A, NOW, TTL)  # nobody holds it
    assert await placement.room_holder(r, NOW) is None
    await placement.place_room(r, A, NOW, TTL)
    assert not await placement.renew_room(r, B, NOW + 1, TTL)
    assert await placement.room_holder(r, NOW + TTL) is None  # A's hold was not extended
    assert not await placement.renew_room(r, A, NOW + TTL, TTL)  # expired: claim again


async def test_only_the_holder_releases(placement: MediaPlacement) -> None:
    r = room()
    assert not await placement.release_room(r, A)
    await placement.place_room(r, A, NOW, TTL)
    assert not await placement.release_room(r, B)
    assert await placement.room_holder(r, NOW) == A
    assert await placement.release_room(r, A)
    assert not await placement.release_room(r, A)
    assert await placement.room_holder(r, NOW) is None
    assert await placement.place_room(r, B, NOW, TTL) == B


async def test_a_closed_store_refuses(backend: Store) -> None:
    await backend.aclose()
    with pytest.raises(StoreClosed):
        await backend.place_room(room(), A, NOW, TTL)


# --- two replicas on one Redis -----------------------------------------------------------


@pytest.fixture
async def two_replicas(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    prefix = fresh_prefix()
    first = await RedisStore.open(redis_server.url, prefix=prefix)
    second = await RedisStore.open(redis_server.url, prefix=prefix)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_two_redis_clients_race_and_one_wins(
    two_replicas: tuple[RedisStore, RedisStore],
) -> None:
    first, second = two_replicas

    async def claim(store: RedisStore, r: bytes, replica: bytes, into: dict[bytes, bytes]) -> None:
        into[replica] = await store.place_room(r, replica, NOW, TTL)

    for _ in range(20):
        r = room()
        results: dict[bytes, bytes] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim, first, r, A, results)
            nursery.start_soon(claim, second, r, B, results)
        assert results[A] == results[B] in (A, B)
        assert await first.room_holder(r, NOW) == await second.room_holder(r, NOW) == results[A]


async def test_two_redis_clients_see_one_placement(
    two_replicas: tuple[RedisStore, RedisStore],
) -> None:
    first, second = two_replicas
    await first.announce_media(A, "10.1.2.3", 7482, NOW, TTL)
    assert await second.media_address(A, NOW) == MediaAddress("10.1.2.3", 7482)
    r = room()
    assert await first.place_room(r, A, NOW, TTL) == A
    assert await second.place_room(r, B, NOW, TTL) == A
    assert not await second.release_room(r, B)
    assert await second.place_room(r, B, NOW + TTL, TTL) == B
    assert await first.room_holder(r, NOW + TTL) == B


async def test_redis_keys_carry_a_backstop_ttl(redis_server: RedisServer) -> None:
    prefix = fresh_prefix()
    store = await RedisStore.open(redis_server.url, prefix=prefix)
    try:
        await store.announce_media(A, "10.1.2.3", 7482, NOW, TTL)
        await store.place_room(B, A, NOW, TTL)
    finally:
        await store.aclose()
    for key in (f"{prefix}media:{A.decode()}", f"{prefix}room:{B.decode()}"):
        left = int(command(redis_server.port, "PTTL", key))
        assert TTL < left <= TTL + BACKSTOP_GRACE_MS, key
