"""The :class:`~node.store.ports.Mailboxes` contract: enqueue, de-duplication, seqs,
pending, ack and batches (every backend alike; fan-out in ``test_shared*_contract``)."""

from __future__ import annotations

import dataclasses
import os

import trio

from node.store import (
    Mailboxes,
    Storage,
    StoredEnvelope,
)
from tests.node.harness import eid
from tests.node.store.contract import (
    HOUR,
    MAILBOX,
    NOW,
    OTHER_MAILBOX,
    envelope,
)


async def test_enqueue_assigns_increasing_seqs_and_ignores_the_callers(
    mailboxes: Mailboxes,
) -> None:
    seqs = []
    for n in range(5):
        stored, seq = await mailboxes.enqueue(dataclasses.replace(envelope(eid(n)), seq=999))
        assert stored
        seqs.append(seq)
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    assert seqs[0] > 0
    assert [e.seq for e in await mailboxes.pending(MAILBOX, 0, 10, NOW)] == seqs


async def test_enqueue_is_idempotent_by_mailbox_and_eid(mailboxes: Mailboxes) -> None:
    stored, seq = await mailboxes.enqueue(envelope(eid(1), body=b"first"))
    assert stored
    assert await mailboxes.enqueue(envelope(eid(1), body=b"second")) == (False, seq)
    (only,) = await mailboxes.pending(MAILBOX, 0, 10, NOW)
    assert only.body == b"first"
    stored_elsewhere, other_seq = await mailboxes.enqueue(envelope(eid(1), mailbox=OTHER_MAILBOX))
    assert stored_elsewhere
    assert other_seq > seq


async def test_an_acked_eid_stays_a_duplicate_until_its_tombstone_is_swept(
    storage: Storage,
) -> None:
    await storage.mailboxes.enqueue(envelope(eid(1), expires=NOW + HOUR))
    assert await storage.mailboxes.ack(MAILBOX, [eid(1)]) == 1
    assert await storage.mailboxes.enqueue(envelope(eid(1))) == (False, 0)
    assert await storage.mailboxes.pending(MAILBOX, 0, 10, NOW) == []
    assert (await storage.maintenance.sweep(NOW + HOUR - 1)).tombstones == 0
    assert await storage.mailboxes.enqueue(envelope(eid(1))) == (False, 0)
    assert (await storage.maintenance.sweep(NOW + HOUR)).tombstones == 1
    stored, seq = await storage.mailboxes.enqueue(envelope(eid(1), expires=NOW + 2 * HOUR))
    assert stored
    assert seq > 0


async def test_seqs_are_never_reused_after_the_highest_is_acked(storage: Storage) -> None:
    _, first = await storage.mailboxes.enqueue(envelope(eid(1)))
    await storage.mailboxes.ack(MAILBOX, [eid(1)])
    await storage.maintenance.sweep(NOW + 2 * HOUR)  # not even once its tombstone is gone
    _, second = await storage.mailboxes.enqueue(envelope(eid(2), expires=NOW + 3 * HOUR))
    assert second > first


async def test_pending_is_in_order_with_after_seq_and_limit(mailboxes: Mailboxes) -> None:
    seqs = [(await mailboxes.enqueue(envelope(eid(n))))[1] for n in range(10)]
    await mailboxes.enqueue(envelope(eid(99), mailbox=OTHER_MAILBOX))
    page = await mailboxes.pending(MAILBOX, 0, 4, NOW)
    assert [e.eid for e in page] == [eid(n) for n in range(4)]
    page = await mailboxes.pending(MAILBOX, page[-1].seq, 4, NOW)
    assert [e.eid for e in page] == [eid(n) for n in range(4, 8)]
    page = await mailboxes.pending(MAILBOX, page[-1].seq, 4, NOW)
    assert [e.eid for e in page] == [eid(8), eid(9)]
    assert await mailboxes.pending(MAILBOX, seqs[-1], 4, NOW) == []
    assert await mailboxes.pending(MAILBOX, 0, 0, NOW) == []
    assert await mailboxes.pending(b"\x01" * 16, 0, 10, NOW) == []


async def test_pending_returns_the_envelope_as_stored(mailboxes: Mailboxes) -> None:
    sent = StoredEnvelope(
        mailbox=MAILBOX,
        eid=eid(7),
        seq=0,
        ts=NOW - 5,
        expires=NOW + HOUR,
        origin="b.example",
        sender="bob@b.example",
        body=os.urandom(3000),
    )
    _, seq = await mailboxes.enqueue(sent)
    assert await mailboxes.pending(MAILBOX, 0, 1, NOW) == [dataclasses.replace(sent, seq=seq)]


async def test_expired_envelopes_are_never_pending(mailboxes: Mailboxes) -> None:
    await mailboxes.enqueue(envelope(eid(1), expires=NOW))
    await mailboxes.enqueue(envelope(eid(2), expires=NOW + 1))
    assert [e.eid for e in await mailboxes.pending(MAILBOX, 0, 10, NOW)] == [eid(2)]
    assert await mailboxes.count_pending(MAILBOX, NOW) == 1
    assert await mailboxes.pending(MAILBOX, 0, 10, NOW + 1) == []
    assert await mailboxes.count_pending(MAILBOX, NOW + 1) == 0


async def test_ack_deletes_only_this_mailboxs_envelopes_once(mailboxes: Mailboxes) -> None:
    for n in range(4):
        await mailboxes.enqueue(envelope(eid(n)))
    await mailboxes.enqueue(envelope(eid(0), mailbox=OTHER_MAILBOX))
    assert await mailboxes.ack(MAILBOX, [eid(0), eid(2), eid(2), eid(42)]) == 2
    assert await mailboxes.ack(MAILBOX, [eid(0)]) == 0
    assert await mailboxes.ack(MAILBOX, []) == 0
    assert [e.eid for e in await mailboxes.pending(MAILBOX, 0, 10, NOW)] == [eid(1), eid(3)]
    assert await mailboxes.count_pending(OTHER_MAILBOX, NOW) == 1
    assert await mailboxes.count_pending(MAILBOX, NOW) == 2


async def test_concurrent_enqueues_of_one_eid_store_it_once(mailboxes: Mailboxes) -> None:
    results: list[tuple[bool, int]] = []

    async def send() -> None:
        results.append(await mailboxes.enqueue(envelope(eid(1))))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(send)
    assert sum(stored for stored, _ in results) == 1
    assert len({seq for _, seq in results}) == 1
    assert await mailboxes.count_pending(MAILBOX, NOW) == 1


async def test_enqueue_many_stores_in_order_and_reports_each(mailboxes: Mailboxes) -> None:
    stored_before, first = await mailboxes.enqueue(envelope(eid(1)))
    assert stored_before
    batch = [envelope(eid(2)), envelope(eid(1)), envelope(eid(3)), envelope(eid(2))]
    results = await mailboxes.enqueue_many(batch)
    assert [stored for stored, _ in results] == [True, False, True, False]
    assert results[1] == (False, first)
    assert results[3] == (False, results[0][1])
    assert first < results[0][1] < results[2][1]
    pending = await mailboxes.pending(MAILBOX, 0, 10, NOW)
    assert [e.eid for e in pending] == [eid(1), eid(2), eid(3)]


async def test_enqueue_many_of_nothing(mailboxes: Mailboxes) -> None:
    assert await mailboxes.enqueue_many([]) == []
    assert await mailboxes.pending(MAILBOX, 0, 10, NOW) == []
