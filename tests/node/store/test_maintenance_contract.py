"""The :class:`~node.store.ports.Maintenance` contract: sweep, stats and close (every
backend alike)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.store import (
    Storage,
    StoreClosed,
    SweepResult,
)
from tests.node.harness import eid
from tests.node.store.contract import (
    HOUR,
    MAILBOX,
    NOW,
    OTHER_MAILBOX,
    device,
    envelope,
    open_backend,
    registered,
)


async def test_sweep_deletes_what_expired_and_counts_it(storage: Storage) -> None:
    later = NOW + HOUR
    for n in range(3):  # expired, never acked
        await storage.mailboxes.enqueue(envelope(eid(n), expires=later))
    for n in range(3, 5):  # expired, acked: tombstones
        await storage.mailboxes.enqueue(envelope(eid(n), expires=later))
    await storage.mailboxes.ack(MAILBOX, [eid(3), eid(4)])
    await storage.mailboxes.enqueue(envelope(eid(9), expires=later + 1))  # still alive
    await storage.accounts.add_invite(b"old", "x", later)
    await storage.accounts.add_invite(b"new", "y", later + 1)
    await storage.blobs.grant_blob(b"B" * 16, b"T" * 32, 1, later)
    assert await storage.blobs.put_blob(b"B" * 16, b"T" * 32, b"z", NOW)
    await storage.blobs.grant_blob(b"C" * 16, b"T" * 32, 1, later)  # never uploaded
    await storage.blobs.grant_blob(b"D" * 16, b"T" * 32, 1, later + 1)

    assert await storage.maintenance.sweep(later) == SweepResult(
        envelopes=3, blobs=2, tombstones=2, invites=1
    )
    assert await storage.maintenance.sweep(later) == SweepResult(
        envelopes=0, blobs=0, tombstones=0, invites=0
    )
    assert [e.eid for e in await storage.mailboxes.pending(MAILBOX, 0, 10, NOW)] == [eid(9)]
    assert await storage.blobs.get_blob(b"B" * 16, NOW) is None
    assert await storage.blobs.put_blob(b"D" * 16, b"T" * 32, b"d", NOW)
    assert await storage.accounts.register(b"new", "y", device("y@a.example"), NOW)
    assert not await storage.accounts.register(
        b"old", "x", device("x@a.example", 1, OTHER_MAILBOX), NOW
    )


async def test_stats(storage: Storage) -> None:
    assert await storage.maintenance.stats() == {
        "envelopes": 0,
        "tombstones": 0,
        "blobs": 0,
        "blob_bytes": 0,
        "accounts": 0,
        "devices": 0,
        "invites": 0,
        "shared_bodies": 0,
    }
    await registered(storage.accounts, "alice", MAILBOX)
    await registered(storage.accounts, "bob", OTHER_MAILBOX)
    await storage.accounts.add_invite(b"spare", "carol", NOW + HOUR)
    for n in range(3):
        await storage.mailboxes.enqueue(envelope(eid(n)))
    await storage.mailboxes.ack(MAILBOX, [eid(0)])
    await storage.blobs.grant_blob(b"B" * 16, b"T" * 32, 2, NOW + HOUR)
    await storage.blobs.grant_blob(b"C" * 16, b"T" * 32, 2, NOW + HOUR)
    await storage.blobs.put_blob(b"B" * 16, b"T" * 32, b"hi", NOW)
    assert await storage.maintenance.stats() == {
        "envelopes": 2,
        "tombstones": 1,
        "blobs": 1,
        "blob_bytes": 2,
        "accounts": 2,
        "devices": 2,
        "invites": 1,
        "shared_bodies": 0,
    }


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    for kind in ("memory", "sqlite"):
        store = await open_backend(kind, tmp_path / kind)
        await store.aclose()
        with pytest.raises(StoreClosed):
            await store.enqueue(envelope(eid(1)))
