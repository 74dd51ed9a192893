"""The :class:`~node.store.ports.CallLegs` contract: call legs that other replicas find,
claimed by one bridge only, the claim given back by a bridge that failed, renewed, deleted
and swept by expiry (every backend alike)."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from node.store import CallLegs, LegRecord, Storage
from tests.node.store.contract import HOUR, NOW

REPLICA = b"R" * 8
OTHER_REPLICA = b"S" * 8
MINUTE = 60_000


@pytest.fixture
def call_legs(storage: Storage) -> CallLegs:
    return storage.call_legs


def leg(expires: int = NOW + MINUTE, replica: bytes = REPLICA) -> LegRecord:
    return LegRecord(
        leg_id=os.urandom(16),
        replica=replica,
        secret_hash=hashlib.sha256(os.urandom(32)).digest(),
        expires=expires,
    )


async def test_a_leg_is_found_until_it_expires(call_legs: CallLegs) -> None:
    record = leg()
    assert await call_legs.leg(record.leg_id, NOW) is None
    assert await call_legs.add_leg(record)
    assert await call_legs.leg(record.leg_id, NOW) == record
    assert await call_legs.leg(record.leg_id, record.expires - 1) == record
    assert await call_legs.leg(record.leg_id, record.expires) is None
    assert await call_legs.leg(os.urandom(16), NOW) is None


async def test_a_leg_id_is_added_once(call_legs: CallLegs) -> None:
    record = leg()
    assert await call_legs.add_leg(record)
    again = LegRecord(record.leg_id, OTHER_REPLICA, b"h" * 32, NOW + HOUR)
    assert not await call_legs.add_leg(again)
    assert await call_legs.leg(record.leg_id, NOW) == record


async def test_one_bridge_claims_a_leg(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    first = await call_legs.claim_leg(record.leg_id, NOW)
    assert first == record  # as it was before: unclaimed, so this call claimed it
    assert first is not None
    assert not first.claimed
    second = await call_legs.claim_leg(record.leg_id, NOW)
    assert second is not None
    assert second.claimed
    found = await call_legs.leg(record.leg_id, NOW)
    assert found is not None
    assert found.claimed
    assert found.secret_hash == record.secret_hash


async def test_an_unknown_or_expired_leg_cannot_be_claimed(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    assert await call_legs.claim_leg(os.urandom(16), NOW) is None
    assert await call_legs.claim_leg(record.leg_id, record.expires) is None
    assert await call_legs.claim_leg(record.leg_id, NOW) == record  # still unclaimed


async def test_concurrent_claims_have_one_winner(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    results: list[LegRecord | None] = []

    async def claim() -> None:
        results.append(await call_legs.claim_leg(record.leg_id, NOW))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(claim)
    assert len(results) == 8
    assert sum(1 for r in results if r is not None and not r.claimed) == 1


async def test_a_claim_given_back_lets_the_next_bridge_claim_the_leg(
    call_legs: CallLegs,
) -> None:
    record = leg()
    await call_legs.add_leg(record)
    assert not await call_legs.release_leg(record.leg_id, NOW)  # not claimed: nothing to give
    await call_legs.claim_leg(record.leg_id, NOW)
    assert await call_legs.release_leg(record.leg_id, NOW)
    assert await call_legs.leg(record.leg_id, NOW) == record  # as it was: unclaimed
    assert not await call_legs.release_leg(record.leg_id, NOW)  # once only
    again = await call_legs.claim_leg(record.leg_id, NOW)
    assert again is not None
    assert not again.claimed  # the next bridge claimed it
    taken = await call_legs.claim_leg(record.leg_id, NOW)
    assert taken is not None
    assert taken.claimed


async def test_an_unknown_or_expired_leg_is_not_released(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    await call_legs.claim_leg(record.leg_id, NOW)
    assert not await call_legs.release_leg(os.urandom(16), NOW)
    assert not await call_legs.release_leg(record.leg_id, record.expires)
    found = await call_legs.leg(record.leg_id, NOW)
    assert found is not None
    assert found.claimed  # nothing changed
    assert await call_legs.delete_leg(record.leg_id)
    assert not await call_legs.release_leg(record.leg_id, NOW)
    assert await call_legs.leg(record.leg_id, NOW) is None  # not brought back


async def test_concurrent_releases_have_one_winner(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    await call_legs.claim_leg(record.leg_id, NOW)
    results: list[bool] = []

    async def release() -> None:
        results.append(await call_legs.release_leg(record.leg_id, NOW))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(release)
    assert sorted(results) == [False] * 7 + [True]


async def test_renew_moves_a_leg_and_extends_it(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    assert await call_legs.renew_leg(record.leg_id, OTHER_REPLICA, NOW + HOUR, NOW)
    found = await call_legs.leg(record.leg_id, record.expires + 1)
    assert found is not None
    assert (found.replica, found.expires) == (OTHER_REPLICA, NOW + HOUR)
    assert found.secret_hash == record.secret_hash
    await call_legs.sweep_legs(record.expires + 1)  # the old expiry no longer applies
    assert await call_legs.leg(record.leg_id, record.expires + 1) == found


async def test_an_expired_or_unknown_leg_is_not_renewed(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    assert not await call_legs.renew_leg(record.leg_id, REPLICA, NOW + HOUR, record.expires)
    assert not await call_legs.renew_leg(os.urandom(16), REPLICA, NOW + HOUR, NOW)
    assert await call_legs.leg(record.leg_id, record.expires) is None


async def test_a_deleted_leg_is_gone(call_legs: CallLegs) -> None:
    record = leg()
    await call_legs.add_leg(record)
    assert await call_legs.delete_leg(record.leg_id)
    assert not await call_legs.delete_leg(record.leg_id)
    assert await call_legs.leg(record.leg_id, NOW) is None
    assert await call_legs.claim_leg(record.leg_id, NOW) is None
    assert await call_legs.count_legs(NOW) == 0
    assert await call_legs.add_leg(record)  # the id is free again


async def test_sweep_deletes_expired_legs_and_counts_them(call_legs: CallLegs) -> None:
    early = [leg(NOW + MINUTE) for _ in range(3)]
    late = [leg(NOW + HOUR) for _ in range(2)]
    for record in early + late:
        assert await call_legs.add_leg(record)
    assert await call_legs.count_legs(NOW) == 5
    assert await call_legs.count_legs(NOW + MINUTE) == 2
    assert await call_legs.sweep_legs(NOW) == 0
    assert await call_legs.sweep_legs(NOW + MINUTE) == 3
    assert await call_legs.sweep_legs(NOW + MINUTE) == 0
    assert await call_legs.count_legs(NOW) == 2
    for record in early:  # gone for good: not even an add of the same id is refused
        assert await call_legs.add_leg(record)
    assert await call_legs.sweep_legs(NOW + 2 * HOUR) == 5
    assert await call_legs.count_legs(NOW) == 0


async def test_the_message_sweep_leaves_legs_alone(storage: Storage) -> None:
    record = leg(NOW + MINUTE)
    await storage.call_legs.add_leg(record)
    await storage.maintenance.sweep(NOW + HOUR)
    assert await storage.call_legs.sweep_legs(NOW + HOUR) == 1
