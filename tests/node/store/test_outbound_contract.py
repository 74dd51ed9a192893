"""The :class:`~node.store.ports.OutboundQueue` contract: the durable federation queue
per destination domain (every backend alike)."""

from __future__ import annotations

from pathlib import Path

from node.store import (
    OutboundQueue,
    SqliteStore,
    Storage,
)
from node.store.base import OutboundItem

NOW = 1_700_000_000_000
HOUR = 3_600_000


def item(
    n: int, domain: str = "b.example", size: int = 10, expires: int = NOW + HOUR
) -> OutboundItem:
    return OutboundItem(domain, n.to_bytes(16, "big"), expires, bytes([n % 256]) * size)


async def test_queue_is_idempotent_by_domain_and_eid(outbound: OutboundQueue) -> None:
    assert await outbound.outbound_put(item(1))
    assert not await outbound.outbound_put(item(1))
    assert await outbound.outbound_put(item(1, domain="c.example"))
    assert await outbound.outbound_depths(NOW) == {"b.example": 1, "c.example": 1}


async def test_a_batch_keeps_its_txn_until_done(outbound: OutboundQueue) -> None:
    for n in range(5):
        await outbound.outbound_put(item(n))
    txn, batch = await outbound.outbound_batch("b.example", b"T1" * 8, 3, 1 << 20, NOW)
    assert txn == b"T1" * 8
    assert [i.eid for i in batch] == [n.to_bytes(16, "big") for n in range(3)]
    # asked again (a retry, or after a restart): the same transaction, not a new one
    again, same = await outbound.outbound_batch("b.example", b"T2" * 8, 3, 1 << 20, NOW)
    assert again == txn
    assert same == batch
    assert await outbound.outbound_done("b.example", txn, []) == 3
    txn3, rest = await outbound.outbound_batch("b.example", b"T3" * 8, 10, 1 << 20, NOW)
    assert txn3 == b"T3" * 8
    assert [i.eid[-1] for i in rest] == [3, 4]


async def test_items_to_retry_go_back_to_the_queue(outbound: OutboundQueue) -> None:
    for n in range(3):
        await outbound.outbound_put(item(n))
    txn, batch = await outbound.outbound_batch("b.example", b"A" * 16, 10, 1 << 20, NOW)
    assert await outbound.outbound_done("b.example", txn, [batch[1].eid]) == 2
    txn2, rest = await outbound.outbound_batch("b.example", b"B" * 16, 10, 1 << 20, NOW)
    assert txn2 == b"B" * 16
    assert [i.eid for i in rest] == [batch[1].eid]


async def test_a_batch_respects_the_byte_limit_but_takes_at_least_one(
    outbound: OutboundQueue,
) -> None:
    for n in range(4):
        await outbound.outbound_put(item(n, size=400))
    _, batch = await outbound.outbound_batch("b.example", b"C" * 16, 100, 1000, NOW)
    assert len(batch) == 2
    await outbound.outbound_done("b.example", b"C" * 16, [])
    await outbound.outbound_put(item(9, domain="big.example", size=5000))
    _, big = await outbound.outbound_batch("big.example", b"D" * 16, 100, 1000, NOW)
    assert len(big) == 1


async def test_expired_items_are_never_sent_and_are_swept(storage: Storage) -> None:
    await storage.outbound.outbound_put(item(1, expires=NOW + 10))
    await storage.outbound.outbound_put(item(2, domain="c.example", expires=NOW + 10))
    await storage.outbound.outbound_put(item(3))
    _, batch = await storage.outbound.outbound_batch("b.example", b"E" * 16, 10, 1 << 20, NOW + 10)
    assert [i.eid[-1] for i in batch] == [3]
    assert await storage.outbound.outbound_depths(NOW + 10) == {"b.example": 1}
    result = await storage.maintenance.sweep(NOW + 10)
    assert result.outbound == 1  # c.example's; b.example's went when the batch was taken


async def test_the_sqlite_queue_survives_a_reopen(tmp_path: Path) -> None:
    first = await SqliteStore.open(tmp_path / "node.sqlite3")
    for n in range(3):
        await first.outbound_put(item(n))
    txn, batch = await first.outbound_batch("b.example", b"R" * 16, 2, 1 << 20, NOW)
    await first.aclose()
    second = await SqliteStore.open(tmp_path / "node.sqlite3")
    try:
        again, same = await second.outbound_batch("b.example", b"S" * 16, 2, 1 << 20, NOW)
        assert (again, same) == (txn, batch)
        assert await second.outbound_depths(NOW) == {"b.example": 3}
    finally:
        await second.aclose()


async def test_transactions_in_flight_are_skipped_and_new_ones_formed(
    outbound: OutboundQueue,
) -> None:
    """A sender with transactions in flight (``busy``) gets a new transaction of items in
    none; a transaction it does not hold (left by a restart) comes back first."""
    for n in range(7):
        await outbound.outbound_put(item(n))
    t1, first = await outbound.outbound_batch("b.example", b"1" * 16, 3, 1 << 20, NOW)
    t2, second = await outbound.outbound_batch("b.example", b"2" * 16, 3, 1 << 20, NOW, {t1})
    assert t2 == b"2" * 16
    assert [i.eid[-1] for i in first] == [0, 1, 2]
    assert [i.eid[-1] for i in second] == [3, 4, 5]
    t3, third = await outbound.outbound_batch("b.example", b"3" * 16, 3, 1 << 20, NOW, {t1, t2})
    assert [i.eid[-1] for i in third] == [6]
    empty = await outbound.outbound_batch("b.example", b"4" * 16, 3, 1 << 20, NOW, {t1, t2, t3})
    assert empty == (b"4" * 16, [])
    # the second was answered; a sender that holds only the third gets the first again
    assert await outbound.outbound_done("b.example", t2, []) == 3
    assert await outbound.outbound_batch("b.example", b"5" * 16, 3, 1 << 20, NOW, {t3}) == (
        t1,
        first,
    )
    assert await outbound.outbound_depths(NOW) == {"b.example": 4}


async def test_retried_items_go_to_the_end_of_the_queue(outbound: OutboundQueue) -> None:
    for n in range(4):
        await outbound.outbound_put(item(n))
    txn, _ = await outbound.outbound_batch("b.example", b"A" * 16, 2, 1 << 20, NOW)
    assert await outbound.outbound_done("b.example", txn, [item(0).eid]) == 1
    _, batch = await outbound.outbound_batch("b.example", b"B" * 16, 10, 1 << 20, NOW)
    assert [i.eid[-1] for i in batch] == [2, 3, 0]
    assert await outbound.outbound_done("b.example", txn, []) == 0  # answered already
