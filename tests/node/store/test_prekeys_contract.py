"""The :class:`~node.store.ports.Prekeys` contract: published keys, bundles taken once
(every backend alike)."""

from __future__ import annotations

import trio

from node.store import (
    Prekeys,
)
from tests.node.store.contract import (
    prekeys,
)


async def test_no_bundle_before_publishing(prekeys_port: Prekeys) -> None:
    assert await prekeys_port.take_bundle("alice@a.example", 1) is None
    assert await prekeys_port.prekey_counts("alice@a.example", 1) == (0, 0)


async def test_take_bundle_consumes_one_time_keys_lowest_first_then_last_resort(
    prekeys_port: Prekeys,
) -> None:
    await prekeys_port.put_prekeys(
        "alice@a.example", 1, prekeys(dh=range(10, 12), kem=range(20, 21))
    )
    assert await prekeys_port.prekey_counts("alice@a.example", 1) == (2, 1)
    first = await prekeys_port.take_bundle("alice@a.example", 1)
    assert first is not None
    assert (first.one_time, first.kem_prekey, first.kem_last_resort) == (b"dh10", b"kem20", False)
    assert (first.identity, first.signed_prekey, first.sealed_key) == (
        b"identity",
        b"spk",
        b"sealed",
    )
    second = await prekeys_port.take_bundle("alice@a.example", 1)
    assert second is not None
    assert (second.one_time, second.kem_prekey, second.kem_last_resort) == (
        b"dh11",
        b"last-resort",
        True,
    )
    third = await prekeys_port.take_bundle("alice@a.example", 1)
    assert third is not None
    assert (third.one_time, third.kem_prekey, third.kem_last_resort) == (None, b"last-resort", True)
    assert await prekeys_port.prekey_counts("alice@a.example", 1) == (0, 0)


async def test_put_prekeys_replaces_standing_keys_and_adds_only_new_ids(
    prekeys_port: Prekeys,
) -> None:
    await prekeys_port.put_prekeys("alice@a.example", 1, prekeys(dh=range(3), kem=range(3)))
    taken = await prekeys_port.take_bundle("alice@a.example", 1)
    assert taken is not None
    assert taken.one_time == b"dh0"
    # A full re-upload (ids 0..2, with 0 already handed out) plus new ids 3..4, new keys.
    await prekeys_port.put_prekeys(
        "alice@a.example", 1, prekeys(dh=range(5), kem=range(5), tag=b"2")
    )
    assert await prekeys_port.prekey_counts("alice@a.example", 1) == (4, 4)
    handed_out: list[tuple[bytes | None, bytes]] = []
    for _ in range(5):
        bundle = await prekeys_port.take_bundle("alice@a.example", 1)
        assert bundle is not None
        assert (bundle.signed_prekey, bundle.sealed_key) == (b"spk2", b"sealed2")
        handed_out.append((bundle.one_time, bundle.kem_prekey))
    assert handed_out == [
        (b"dh1", b"kem1"),
        (b"dh2", b"kem2"),
        (b"dh3", b"kem3"),
        (b"dh4", b"kem4"),
        (None, b"last-resort2"),
    ]


async def test_prekeys_are_per_device(prekeys_port: Prekeys) -> None:
    await prekeys_port.put_prekeys("alice@a.example", 1, prekeys(dh=range(1)))
    await prekeys_port.put_prekeys("alice@a.example", 2, prekeys(kem=range(1)))
    assert await prekeys_port.prekey_counts("alice@a.example", 1) == (1, 0)
    assert await prekeys_port.prekey_counts("alice@a.example", 2) == (0, 1)
    assert await prekeys_port.take_bundle("bob@a.example", 1) is None


async def test_concurrent_takes_never_hand_out_a_key_twice(prekeys_port: Prekeys) -> None:
    await prekeys_port.put_prekeys("alice@a.example", 1, prekeys(dh=range(50), kem=range(30)))
    bundles = []

    async def take() -> None:
        bundle = await prekeys_port.take_bundle("alice@a.example", 1)
        assert bundle is not None
        bundles.append(bundle)

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(take)
    dh = [b.one_time for b in bundles if b.one_time is not None]
    kem = [b.kem_prekey for b in bundles if not b.kem_last_resort]
    assert sorted(dh) == sorted(b"dh%d" % i for i in range(50))
    assert sorted(kem) == sorted(b"kem%d" % i for i in range(30))
    assert sum(b.kem_last_resort for b in bundles) == 70
    assert all(b.kem_prekey == b"last-resort" for b in bundles if b.kem_last_resort)
