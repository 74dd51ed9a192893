"""The :class:`~node.store.ports.Blobs` contract: grants, one upload each, expiry
(every backend alike)."""

from __future__ import annotations

import os

import trio

from node.store import (
    Blobs,
    Storage,
)
from tests.node.store.contract import (
    HOUR,
    NOW,
)


async def test_a_blob_uploads_once_with_the_right_token_and_size(blobs: Blobs) -> None:
    data = os.urandom(1000)
    await blobs.grant_blob(b"B" * 16, b"T" * 32, len(data), NOW + HOUR)
    assert await blobs.get_blob(b"B" * 16, NOW) is None
    assert not await blobs.put_blob(b"B" * 16, b"X" * 32, data, NOW)
    assert not await blobs.put_blob(b"B" * 16, b"T" * 32, data[:-1], NOW)
    assert not await blobs.put_blob(b"B" * 16, b"T" * 32, data + b"!", NOW)
    assert not await blobs.put_blob(b"C" * 16, b"T" * 32, data, NOW)
    assert await blobs.put_blob(b"B" * 16, b"T" * 32, data, NOW)
    assert not await blobs.put_blob(b"B" * 16, b"T" * 32, os.urandom(1000), NOW)
    assert await blobs.get_blob(b"B" * 16, NOW) == data


async def test_blob_grant_names_the_size_of_an_unused_unexpired_matching_grant(
    blobs: Blobs,
) -> None:
    await blobs.grant_blob(b"B" * 16, b"T" * 32, 5, NOW + HOUR)
    assert await blobs.blob_grant(b"B" * 16, b"T" * 32, NOW) == 5
    assert await blobs.blob_grant(b"B" * 16, b"X" * 32, NOW) is None
    assert await blobs.blob_grant(b"C" * 16, b"T" * 32, NOW) is None
    assert await blobs.blob_grant(b"B" * 16, b"T" * 32, NOW + HOUR) is None
    assert await blobs.put_blob(b"B" * 16, b"T" * 32, b"hello", NOW)
    assert await blobs.blob_grant(b"B" * 16, b"T" * 32, NOW) is None


async def test_a_blob_expires(blobs: Blobs) -> None:
    await blobs.grant_blob(b"B" * 16, b"T" * 32, 3, NOW + HOUR)
    assert not await blobs.put_blob(b"B" * 16, b"T" * 32, b"abc", NOW + HOUR)
    assert await blobs.put_blob(b"B" * 16, b"T" * 32, b"abc", NOW + HOUR - 1)
    assert await blobs.get_blob(b"B" * 16, NOW + HOUR - 1) == b"abc"
    assert await blobs.get_blob(b"B" * 16, NOW + HOUR) is None


async def test_a_large_blob_round_trips(storage: Storage) -> None:
    data = os.urandom(5 << 20)
    await storage.blobs.grant_blob(b"L" * 16, b"T" * 32, len(data), NOW + HOUR)
    assert await storage.blobs.put_blob(b"L" * 16, b"T" * 32, data, NOW)
    assert await storage.blobs.get_blob(b"L" * 16, NOW) == data
    stats = await storage.maintenance.stats()
    assert (stats["blobs"], stats["blob_bytes"]) == (1, 5 << 20)


async def test_concurrent_uploads_to_one_grant_store_one(blobs: Blobs) -> None:
    await blobs.grant_blob(b"B" * 16, b"T" * 32, 4, NOW + HOUR)
    results: list[bool] = []

    async def upload(data: bytes) -> None:
        results.append(await blobs.put_blob(b"B" * 16, b"T" * 32, data, NOW))

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(upload, b"%04d" % n)
    assert sorted(results) == [False] * 7 + [True]
    assert await blobs.get_blob(b"B" * 16, NOW) in {b"%04d" % n for n in range(8)}
