"""The :class:`~node.store.ports.Mailboxes` contract for ``enqueue_shared_many``: several
fan-outs in one call, each as ``enqueue_shared`` would store it, in item order (every
backend alike)."""

from __future__ import annotations

import os

from node.store import (
    Mailboxes,
    Storage,
    StoredEnvelope,
)
from tests.node.harness import eid

NOW = 1_700_000_000_000
HOUR = 3_600_000


def records(mailboxes: list[bytes], eid: bytes) -> list[StoredEnvelope]:
    return [StoredEnvelope(m, eid, 0, NOW, NOW + HOUR, "a.example", None, b"") for m in mailboxes]


async def test_items_are_stored_in_order_each_body_to_its_recipients(storage: Storage) -> None:
    a, b, c = (os.urandom(16) for _ in range(3))
    bodies = [os.urandom(100 + i) for i in range(4)]
    items = [(bodies[i], records([a, b, c], eid(i))) for i in range(4)]
    results = await storage.mailboxes.enqueue_shared_many(items)
    assert len(results) == 4
    assert all(len(r) == 3 and all(stored for stored, _ in r) for r in results)
    for col, mailbox in enumerate([a, b, c]):
        seqs = [results[i][col][1] for i in range(4)]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 4
        pending = await storage.mailboxes.pending(mailbox, 0, 10, NOW)
        assert [e.eid for e in pending] == [eid(i) for i in range(4)]
        assert [e.body for e in pending] == bodies
        assert [e.seq for e in pending] == seqs
    stats = await storage.maintenance.stats()
    assert stats["shared_bodies"] == 4
    assert stats["envelopes"] == 12


async def test_seqs_follow_item_order_for_partly_overlapping_recipients(
    mailboxes: Mailboxes,
) -> None:
    a, b = os.urandom(16), os.urandom(16)
    items = [
        (b"one", records([a], eid(1))),
        (b"two", records([a, b], eid(2))),
        (b"three", records([b], eid(3))),
        (b"four", records([b, a], eid(4))),
    ]
    results = await mailboxes.enqueue_shared_many(items)
    seq_a = [results[0][0][1], results[1][0][1], results[3][1][1]]
    seq_b = [results[1][1][1], results[2][0][1], results[3][0][1]]
    assert seq_a == sorted(seq_a)
    assert len(set(seq_a)) == 3
    assert seq_b == sorted(seq_b)
    assert len(set(seq_b)) == 3
    assert [e.body for e in await mailboxes.pending(a, 0, 10, NOW)] == [b"one", b"two", b"four"]
    assert [e.body for e in await mailboxes.pending(b, 0, 10, NOW)] == [b"two", b"three", b"four"]


async def test_duplicates_within_a_call_and_across_calls(mailboxes: Mailboxes) -> None:
    a, b = os.urandom(16), os.urandom(16)
    first = await mailboxes.enqueue_shared_many(
        [(b"x", records([a, b], eid(7))), (b"x-again", records([a], eid(7)))]
    )
    assert [s for s, _ in first[0]] == [True, True]
    # the later item repeats (a, eid 7): a duplicate, with the seq it was stored under
    assert first[1] == [(False, first[0][0][1])]
    single = await mailboxes.enqueue_shared(b"x", records([a, b], eid(7)))
    again = await mailboxes.enqueue_shared_many([(b"x", records([a, b], eid(7)))])
    assert again == [single]
    assert [stored for stored, _ in single] == [False, False]
    assert [seq for _, seq in single] == [seq for _, seq in first[0]]
    assert [e.body for e in await mailboxes.pending(a, 0, 10, NOW)] == [b"x"]
    assert [e.body for e in await mailboxes.pending(b, 0, 10, NOW)] == [b"x"]


async def test_empty_items(storage: Storage) -> None:
    a = os.urandom(16)
    assert await storage.mailboxes.enqueue_shared_many([]) == []
    assert await storage.mailboxes.enqueue_shared_many([(b"p", []), (b"q", [])]) == [[], []]
    mixed = await storage.mailboxes.enqueue_shared_many(
        [(b"p", []), (b"r", records([a], eid(1))), (b"q", [])]
    )
    assert mixed[0] == []
    assert mixed[2] == []
    assert len(mixed[1]) == 1
    assert mixed[1][0][0] is True
    assert [e.body for e in await storage.mailboxes.pending(a, 0, 10, NOW)] == [b"r"]
    assert (await storage.maintenance.stats())["shared_bodies"] == 1


async def test_one_shared_body_per_item_that_stored_something(storage: Storage) -> None:
    a, b = os.urandom(16), os.urandom(16)
    await storage.mailboxes.enqueue_shared_many([(b"first", records([a, b], eid(1)))])
    # item 0 is wholly a duplicate: it stores nothing, so adds no body
    await storage.mailboxes.enqueue_shared_many(
        [(b"first", records([a, b], eid(1))), (b"second", records([a], eid(2)))]
    )
    await storage.maintenance.sweep(NOW)
    stats = await storage.maintenance.stats()
    assert stats["shared_bodies"] == 2
    assert stats["envelopes"] == 3


async def test_acks_per_recipient(storage: Storage) -> None:
    a, b = os.urandom(16), os.urandom(16)
    await storage.mailboxes.enqueue_shared_many(
        [(b"m1", records([a, b], eid(1))), (b"m2", records([a, b], eid(2)))]
    )
    assert await storage.mailboxes.ack(a, [eid(1), eid(2)]) == 2
    assert await storage.mailboxes.pending(a, 0, 10, NOW) == []
    assert [e.body for e in await storage.mailboxes.pending(b, 0, 10, NOW)] == [b"m1", b"m2"]
    assert await storage.mailboxes.ack(b, [eid(2)]) == 1
    assert [e.body for e in await storage.mailboxes.pending(b, 0, 10, NOW)] == [b"m1"]
    await storage.mailboxes.ack(b, [eid(1)])
    await storage.maintenance.sweep(NOW)
    assert (await storage.maintenance.stats())["shared_bodies"] == 0
